//go:build !cilium_v1_18

// What Cilium 1.19 and 1.20 share against 1.18 (glue_v1_18.go): rules enter the repository as policy
// entries, the selector policy is a field of the endpoint policy, and the L4 and selector accessors are
// methods.

package main

import (
	"slices"

	"github.com/cilium/cilium/pkg/identity"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	policyutils "github.com/cilium/cilium/pkg/policy/utils"
	cilium "github.com/cilium/proxy/go/cilium/api"
)

// replaceByResource files a policy's rules in the repository under its resource, as the agent does (the
// repository takes policy entries, translated from the rules by Cilium's own helper).
func replaceByResource(repo *policy.Repository, rules api.Rules, rid ipcachetypes.ResourceID) {
	repo.ReplaceByResource(policyutils.RulesToPolicyEntries(rules), rid)
}

// l4PolicyOf gives the L4 policy (with its L7 rules) an endpoint policy was distilled from.
func l4PolicyOf(epp *policy.EndpointPolicy) *policy.L4Policy { return &epp.SelectorPolicy.L4Policy }

// envoyHTTPRules gives the HTTP rules of a selector policy as translated for Envoy (nil when not yet).
func envoyHTTPRules(sp *policy.PerSelectorPolicy) *cilium.HttpNetworkPolicyRules {
	return sp.EnvoyHTTPRules()
}

// portFilters lists a direction's L4 filters.
func portFilters(dir policy.L4DirectionPolicy) []*policy.L4Filter {
	return slices.Collect(dir.PortRules.Filters())
}

// isDeny: whether a selector's policy is a deny (nil is an L3/L4 allow).
func isDeny(sp *policy.PerSelectorPolicy) bool { return sp.IsDeny() }

// selects: whether a selector of the endpoint's policy selects the identity.
func selects(_ *policy.EndpointPolicy, cs policy.CachedSelector, nid identity.NumericIdentity) bool {
	return cs.Selects(nid)
}
