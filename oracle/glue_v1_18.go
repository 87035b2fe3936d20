//go:build cilium_v1_18

// What Cilium v1.18's policy engine needs from its caller: as on 1.19 (named ports cluster-wide for
// egress), except that the repository takes the parsed rules themselves and the policy owner reports the
// size of its map state instead of the previous map state.

package main

import (
	"github.com/cilium/cilium/pkg/defaults"
	"github.com/cilium/cilium/pkg/endpoint/regeneration"
	"github.com/cilium/cilium/pkg/fqdn/re"
	"github.com/cilium/cilium/pkg/identity"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	"github.com/cilium/cilium/pkg/spanstat"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
	cilium "github.com/cilium/proxy/go/cilium/api"
)

// replaceByResource files a policy's rules in the repository under its resource, as the agent does.
func replaceByResource(repo *policy.Repository, rules api.Rules, rid ipcachetypes.ResourceID) {
	repo.ReplaceByResource(rules, rid)
}

// setReleaseOptions: allow-localhost=always, and the FQDN regex cache the agent sets up at start (1.18
// refuses a rule with DNS patterns before it exists), at its default size.
func setReleaseOptions() {
	option.Config.AllowLocalhost = option.AllowLocalhostAlways
	if err := re.InitRegexCompileLRU(logger, defaults.FQDNRegexCompileLRUSize); err != nil {
		panic(err)
	}
}

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
func (o *owner) PolicyDebug(string, ...any) {}
func (o *owner) IsHost() bool               { return false }
func (o *owner) MapStateSize() int          { return 0 }
func (o *owner) RegenerateIfAlive(*regeneration.ExternalRegenerationMetadata) <-chan bool {
	ch := make(chan bool)
	close(ch)
	return ch
}

// namedPorts: the numbers a named port of a redirect resolves to (none when it does not resolve; on
// 1.18 egress named ports resolve cluster-wide, whatever the identities).
func (o *owner) namedPorts(ingress bool, name string, proto u8proto.U8proto, _ []identity.NumericIdentity) []uint16 {
	if p := o.GetNamedPort(ingress, name, proto); p != 0 {
		return []uint16{p}
	}
	return nil
}

// namedPortIs: whether a named port means `port` towards `peer` (on 1.18 the peer does not matter).
func (o *owner) namedPortIs(ingress bool, name string, proto u8proto.U8proto, _ identity.NumericIdentity, port uint16) bool {
	return o.GetNamedPort(ingress, name, proto) == port
}

type stats struct{ a, b spanstat.SpanStat }

func (s *stats) WaitingForPolicyRepository() *spanstat.SpanStat { return &s.a }
func (s *stats) SelectorPolicyCalculation() *spanstat.SpanStat  { return &s.b }

// l4PolicyOf gives the L4 policy (with its L7 rules) an endpoint policy was distilled from (on 1.18 the
// selector policy is embedded).
func l4PolicyOf(epp *policy.EndpointPolicy) *policy.L4Policy { return &epp.L4Policy }

// envoyHTTPRules gives the HTTP rules of a selector policy as translated for Envoy (nil when not yet; on
// 1.18 a field).
func envoyHTTPRules(sp *policy.PerSelectorPolicy) *cilium.HttpNetworkPolicyRules {
	return sp.EnvoyHTTPRules
}

// portFilters lists a direction's L4 filters.
func portFilters(dir policy.L4DirectionPolicy) []*policy.L4Filter {
	var out []*policy.L4Filter
	dir.PortRules.ForEach(func(f *policy.L4Filter) bool {
		out = append(out, f)
		return true
	})
	return out
}

// isDeny: whether a selector's policy is a deny (nil is an L3/L4 allow; on 1.18 a field).
func isDeny(sp *policy.PerSelectorPolicy) bool { return sp != nil && sp.IsDeny }

// selects: whether a selector of the endpoint's policy selects the identity, at the selector cache's
// current version (1.18 asks for a version; the policy's own handle is released once it is ready).
func selects(epp *policy.EndpointPolicy, cs policy.CachedSelector, nid identity.NumericIdentity) bool {
	h := epp.SelectorCache.GetVersionHandle()
	defer func() { _ = h.Close() }()
	return cs.Selects(h, nid)
}
