//go:build !cilium_v1_18 && !cilium_v1_20

// What Cilium v1.19's policy engine needs from its caller: the policy owner, named ports (egress named
// ports resolve cluster-wide: one number for the name across every pod, or none), agent options.

package main

import (
	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/spanstat"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
)

// setReleaseOptions sets the agent option this release reads from its global configuration:
// allow-localhost=always.
func setReleaseOptions() { option.Config.AllowLocalhost = option.AllowLocalhostAlways }

// portMultiMap is what ciliumtypes.NewNamedPortMultiMap returns.
type portMultiMap interface {
	ciliumtypes.NamedPortMultiMap
	Update(old, new ciliumtypes.NamedPortMap) bool
}

func addNamedPorts(multi portMultiMap, _ identity.NumericIdentity, npm ciliumtypes.NamedPortMap) {
	multi.Update(nil, npm)
}

func configureRepository(*policy.Repository, portMultiMap, identity.IdentityMap) {}

func resolvePolicy(repo *policy.Repository, id *identity.Identity, o *owner) (policy.SelectorPolicy, error) {
	sp, _, err := repo.GetSelectorPolicy(id, 0, &stats{}, o.id)
	return sp, err
}

// owner is the endpoint a policy is distilled for: Cilium's PolicyOwner.
type owner struct {
	id      uint64
	ingress ciliumtypes.NamedPortMap      // the pod's own named ports
	egress  ciliumtypes.NamedPortMultiMap // every pod's named ports, as the agent sees them
}

func (o *owner) GetID() uint64 { return o.id }
func (o *owner) GetNamedPort(ingress bool, name string, proto u8proto.U8proto) uint16 {
	if ingress {
		p, _ := o.ingress.GetNamedPort(name, proto)
		return p
	}
	p, _ := o.egress.GetNamedPort(name, proto)
	return p
}
func (o *owner) PolicyDebug(string, ...any)         {}
func (o *owner) IsHost() bool                       { return false }
func (o *owner) PreviousMapState() *policy.MapState { return nil }
func (o *owner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}

// namedPorts: the numbers a named port of a redirect resolves to (none when it does not resolve; on
// 1.19 egress named ports resolve cluster-wide, whatever the identities).
func (o *owner) namedPorts(ingress bool, name string, proto u8proto.U8proto, _ []identity.NumericIdentity) []uint16 {
	if p := o.GetNamedPort(ingress, name, proto); p != 0 {
		return []uint16{p}
	}
	return nil
}

// namedPortIs: whether a named port means `port` towards `peer` (on 1.19 the peer does not matter).
func (o *owner) namedPortIs(ingress bool, name string, proto u8proto.U8proto, _ identity.NumericIdentity, port uint16) bool {
	return o.GetNamedPort(ingress, name, proto) == port
}

type stats struct{ a, b spanstat.SpanStat }

func (s *stats) WaitingForPolicyRepository() *spanstat.SpanStat { return &s.a }
func (s *stats) SelectorPolicyCalculation() *spanstat.SpanStat  { return &s.b }
