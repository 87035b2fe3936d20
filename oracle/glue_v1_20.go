//go:build cilium_v1_20

// What Cilium v1.20's policy engine needs from its caller: the policy owner (ingress named ports only),
// the named ports of every identity (egress named ports resolve per destination identity, through the
// repository's named-ports getter), agent options.

package main

import (
	"maps"
	"slices"

	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
)

// setReleaseOptions sets the agent option this release reads from its global configuration:
// allow-localhost=always.
func setReleaseOptions() {
	option.Config.UnsafeDaemonConfigOption.AllowLocalhost = option.AllowLocalhostAlways
}

// portMultiMap is what ciliumtypes.NewNamedPortMultiMap returns.
type portMultiMap interface {
	ciliumtypes.NamedPortMultiMap
	Update(nid identity.NumericIdentity, old, new ciliumtypes.NamedPortMap) bool
}

func addNamedPorts(multi portMultiMap, nid identity.NumericIdentity, npm ciliumtypes.NamedPortMap) {
	multi.Update(nid, nil, npm)
}

type namedPortsGetter struct{ m ciliumtypes.NamedPortMultiMap }

func (g namedPortsGetter) GetNamedPorts() ciliumtypes.NamedPortMultiMap { return g.m }

// configureRepository gives the repository the named ports of every identity and the identities its
// policy subjects are matched against (the agent does both as identities appear).
func configureRepository(repo *policy.Repository, multi portMultiMap, ids identity.IdentityMap) {
	repo.SetNamedPortsGetter(namedPortsGetter{multi})
	repo.UpdateIdentities(ids, nil)
}

func resolvePolicy(repo *policy.Repository, id *identity.Identity, _ *owner) (policy.SelectorPolicy, error) {
	return repo.ResolvePolicy(id)
}

// owner is the endpoint a policy is distilled for: Cilium's PolicyOwner.
type owner struct {
	id      uint64
	ingress ciliumtypes.NamedPortMap      // the pod's own named ports
	egress  ciliumtypes.NamedPortMultiMap // every pod's named ports, by identity
}

func (o *owner) GetID() uint64 { return o.id }
func (o *owner) GetIngressNamedPort(name string, proto u8proto.U8proto) uint16 {
	p, _ := o.ingress.GetNamedPort(name, proto)
	return p
}
func (o *owner) PolicyDebug(string, ...any)                  {}
func (o *owner) IsHost() bool                                { return false }
func (o *owner) PreviousMapStateSizes() policy.MapStateSizes { return policy.MapStateSizes{} }
func (o *owner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}

// namedPorts: the numbers a named port of a redirect resolves to: the pod's own at ingress, those of
// the identities `nids` at egress.
func (o *owner) namedPorts(ingress bool, name string, proto u8proto.U8proto, nids []identity.NumericIdentity) []uint16 {
	if ingress {
		if p := o.GetIngressNamedPort(name, proto); p != 0 {
			return []uint16{p}
		}
		return nil
	}
	ports := map[uint16]struct{}{}
	for _, p := range o.egress.GetNamedPorts(name, proto, slices.Values(nids)).Ports() {
		ports[p] = struct{}{}
	}
	return slices.Sorted(maps.Keys(ports))
}

// namedPortIs: whether a named port means `port` towards `peer` (egress: the peer's own number for it).
func (o *owner) namedPortIs(ingress bool, name string, proto u8proto.U8proto, peer identity.NumericIdentity, port uint16) bool {
	if ingress {
		return o.GetIngressNamedPort(name, proto) == port
	}
	for _, p := range o.egress.GetNamedPorts(name, proto, func(yield func(identity.NumericIdentity) bool) { yield(peer) }).Ports() {
		if p == port {
			return true
		}
	}
	return false
}
