package main

// The glue to Cilium's policy engine: rules into the repository, the endpoint policy distilled and looked
// up as the datapath does, where the L7 rules live. What differs between releases (the policy owner,
// named ports, how rules enter the repository and a selector policy is resolved, agent options) is in
// glue_v1_18.go / glue_v1_19.go / glue_v1_20.go, the Kafka proxy in kafka.go; the rest of the program is
// release-neutral.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/fqdn/dnsproxy"
	"github.com/cilium/cilium/pkg/identity"
	"github.com/cilium/cilium/pkg/identity/identitymanager"
	ipcachetypes "github.com/cilium/cilium/pkg/ipcache/types"
	ciliumio "github.com/cilium/cilium/pkg/k8s/apis/cilium.io"
	v2 "github.com/cilium/cilium/pkg/k8s/apis/cilium.io/v2"
	"github.com/cilium/cilium/pkg/labels"
	"github.com/cilium/cilium/pkg/option"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/policy/api"
	testpolicy "github.com/cilium/cilium/pkg/testutils/policy"
	ciliumtypes "github.com/cilium/cilium/pkg/types"
	"github.com/cilium/cilium/pkg/u8proto"
)

var (
	logger   = slog.New(slog.NewTextHandler(io.Discard, nil))
	initOnce sync.Once
)

// initCilium sets the agent options the engine reads from its global configuration, to the defaults of
// a Cilium installation: traffic from the local host is always allowed (allow-localhost=always, the
// default outside of host firewalls), ICMP rules are enabled (enable-icmp-rules, on by default), and the
// cluster entity includes the pods of this cluster.
func initCilium(cluster string) {
	initOnce.Do(func() {
		setReleaseOptions()
		option.Config.EnableICMPRules = true
		api.InitEntities(cluster)
	})
}

// numericID gives each identity of the file a numeric identity: reserved numbers for host, remote-node
// and kube-apiserver (the datapath treats the host's number specially), local (CIDR) identities for world
// addresses, and cluster identities for pods.
func numericID(i int, id identityJSON) identity.NumericIdentity {
	switch id.Kind {
	case "host":
		return identity.ReservedIdentityHost
	case "remote-node":
		return identity.ReservedIdentityRemoteNode
	case "kube-apiserver":
		return identity.ReservedIdentityKubeAPIServer
	case "world":
		return identity.IdentityScopeLocal | identity.NumericIdentity(i+1)
	default:
		return identity.NumericIdentity(1000 + i)
	}
}

// labelsOf gives the labels of an identity: a world address gets Cilium's own CIDR labels.
func labelsOf(id identityJSON, addr netip.Addr) labels.LabelArray {
	if id.Kind == "world" {
		return labels.GetCIDRLabels(netip.PrefixFrom(addr, addr.BitLen())).LabelArray()
	}
	return labels.NewLabelsFromModel(id.Labels).LabelArray()
}

// policyStatus is whether Cilium accepted a policy.
type policyStatus struct {
	Name   string `json:"name"`
	File   string `json:"file"`
	Line   int    `json:"line"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// engine is one policy repository over the identities, with the distilled policy of each pod.
type engine struct {
	ids      *identities
	nids     []identity.NumericIdentity
	byNID    map[identity.NumericIdentity]int
	repo     *policy.Repository
	owners   []*owner
	distills map[int]*policy.EndpointPolicy
}

func newEngine(ids *identities, docs []policyDoc) (*engine, []policyStatus) {
	initCilium(ids.cluster)
	e := &engine{ids: ids, byNID: map[identity.NumericIdentity]int{}, distills: map[int]*policy.EndpointPolicy{}}
	idMap := identity.IdentityMap{}
	multi := ciliumtypes.NewNamedPortMultiMap()
	for i, id := range ids.list {
		nid := numericID(i, id)
		e.nids = append(e.nids, nid)
		e.byNID[nid] = i
		idMap[nid] = labelsOf(id, ids.addrs[i])
		if id.Kind == "pod" {
			npm := ciliumtypes.NamedPortMap{}
			for _, p := range id.Ports {
				if p.Name != "" {
					_ = npm.AddPort(p.Name, int(p.Port), p.Protocol)
				}
			}
			addNamedPorts(multi, nid, npm)
		}
	}
	for i, id := range ids.list {
		var o *owner
		if id.Kind == "pod" {
			npm := ciliumtypes.NamedPortMap{}
			for _, p := range id.Ports {
				if p.Name != "" {
					_ = npm.AddPort(p.Name, int(p.Port), p.Protocol)
				}
			}
			o = &owner{id: uint64(i + 1), ingress: npm, egress: multi}
		}
		e.owners = append(e.owners, o)
	}
	idMgr := identitymanager.NewIDManager(logger)
	e.repo = policy.NewPolicyRepository(logger, idMap, nil,
		envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline()),
		idMgr, testpolicy.NewPolicyMetricsNoop())
	configureRepository(e.repo, multi, idMap)
	var statuses []policyStatus
	for i, d := range docs {
		st, ns, rules := parseDoc(d, ids.cluster)
		statuses = append(statuses, st)
		if rules != nil {
			// The repository files rules by the namespace of their resource id, as the agent does.
			kind := ipcachetypes.ResourceKindCNP
			if d.kind == "CiliumClusterwideNetworkPolicy" {
				kind = ipcachetypes.ResourceKindCCNP
			}
			replaceByResource(e.repo, rules, ipcachetypes.NewResourceID(kind, ns, fmt.Sprintf("doc-%d", i)))
		}
	}
	for i, id := range ids.list {
		if id.Kind == "pod" {
			idMgr.Add(identity.NewIdentityFromLabelArray(e.nids[i], idMap[e.nids[i]]))
		}
	}
	return e, statuses
}

// parseDoc runs Cilium's own parsing and sanitising (what the agent does with a CNP/CCNP it receives).
func parseDoc(d policyDoc, cluster string) (st policyStatus, namespace string, rules api.Rules) {
	st = policyStatus{File: d.file, Line: d.line, Status: "in-force"}
	var err error
	// Cilium's Go types are what its CRD schema is generated from: a field they lack (like `kafka` on
	// 1.20) is one a strict apply refuses, so it is decoded strictly.
	var meta struct {
		Metadata struct{ Name, Namespace string }
	}
	if json.Unmarshal(d.json, &meta) == nil {
		// The name, also for a policy refused below.
		st.Name = meta.Metadata.Name
		if d.kind != "CiliumClusterwideNetworkPolicy" {
			ns := meta.Metadata.Namespace
			if ns == "" {
				ns = "default"
			}
			st.Name = ns + "/" + st.Name
		}
	}
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(d.json))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("the Cilium %s CRD refuses it (a strict apply fails): %w", ciliumRelease, err)
		}
		return nil
	}
	if d.kind == "CiliumClusterwideNetworkPolicy" {
		var p v2.CiliumClusterwideNetworkPolicy
		if err = strict(&p); err == nil {
			st.Name = p.Name
			rules, err = p.Parse(logger, cluster)
		}
	} else {
		var p v2.CiliumNetworkPolicy
		if err = strict(&p); err == nil {
			if p.Namespace == "" {
				// kubectl puts a namespaced object without a namespace into `default`.
				p.Namespace = "default"
			}
			namespace = p.Namespace
			st.Name = p.Namespace + "/" + p.Name
			rules, err = p.Parse(logger, cluster)
		}
	}
	if err != nil {
		st.Status = "rejected"
		st.Reason = err.Error()
		return st, namespace, nil
	}
	return st, namespace, rules
}

// endpointPolicy distills the policy of pod i, with a proxy port for every redirect (as the agent
// creates them before it writes the policy map).
func (e *engine) endpointPolicy(i int) (*policy.EndpointPolicy, error) {
	if ep, ok := e.distills[i]; ok {
		return ep, nil
	}
	id := identity.NewIdentityFromLabelArray(e.nids[i], labelsOf(e.ids.list[i], e.ids.addrs[i]))
	sp, err := resolvePolicy(e.repo, id, e.owners[i])
	if err != nil {
		return nil, policyError{fmt.Sprintf("%s: Cilium cannot compute the endpoint's policy: %v", e.ids.list[i].Name, err)}
	}
	redirects := map[string]uint16{}
	next := uint16(10000)
	for l4, tuple := range sp.RedirectFilters() {
		ports := []uint16{l4.Port}
		if l4.Port == 0 && l4.PortName != "" {
			ports = e.owners[i].namedPorts(l4.Ingress, l4.PortName, l4.U8Proto, e.nids)
		}
		for _, port := range ports {
			pid := policy.ProxyID(uint16(e.owners[i].id), l4.Ingress, string(l4.Protocol), port, tuple.Policy.GetListener())
			if _, ok := redirects[pid]; !ok {
				redirects[pid] = next
				next++
			}
		}
	}
	ep := sp.DistillPolicy(logger, e.owners[i], redirects)
	ep.Ready()
	e.distills[i] = ep
	return ep, nil
}

// dirVerdict is the verdict of one direction.
type dirVerdict struct {
	enforced bool
	deny     bool
	explicit bool // an explicit deny rule matched (drop reason 181)
	redirect bool
	rules    []string
}

// lookup asks the distilled policy map of pod `ep` about traffic with `peer`, as the datapath would.
func (e *engine) lookup(ep, peer int, ingress bool, proto u8proto.U8proto, port uint16) (dirVerdict, *policy.EndpointPolicy, error) {
	epp, err := e.endpointPolicy(ep)
	if err != nil {
		return dirVerdict{}, nil, err
	}
	key := policy.EgressKey()
	if ingress {
		key = policy.IngressKey()
	}
	key = key.WithIdentity(e.nids[peer]).WithPortProto(proto, port)
	entry, meta, found := epp.Lookup(key)
	v := dirVerdict{deny: entry.IsDeny(), explicit: found && entry.IsDeny(), redirect: !entry.IsDeny() && entry.IsRedirectEntry()}
	for _, la := range meta.LabelArray() {
		if n := policyName(la); n != "" {
			v.rules = appendUnique(v.rules, n)
		}
	}
	sort.Strings(v.rules)
	return v, epp, nil
}

func policyName(la labels.LabelArray) string {
	var ns, name string
	for _, l := range la {
		switch l.Key {
		case ciliumio.PolicyLabelNamespace:
			ns = l.Value
		case ciliumio.PolicyLabelName:
			name = l.Value
		}
	}
	if ns != "" {
		return ns + "/" + name
	}
	return name
}

// l7Policies gives the per-selector policies of pod `ep`'s direction that apply to `peer` on the port:
// the rules the proxy enforces for this peer. A nil entry is an L3/L4-only allow (every request).
func (e *engine) l7Policies(epp *policy.EndpointPolicy, ep, peer int, ingress bool, proto u8proto.U8proto, port uint16) []*policy.PerSelectorPolicy {
	l4p := l4PolicyOf(epp)
	dir := l4p.Egress
	if ingress {
		dir = l4p.Ingress
	}
	var out []*policy.PerSelectorPolicy
	for _, l4 := range portFilters(dir) {
		if l4.U8Proto != 0 && l4.U8Proto != proto {
			continue
		}
		switch {
		case l4.PortName != "":
			if !e.owners[ep].namedPortIs(ingress, l4.PortName, proto, e.nids[peer], port) {
				continue
			}
		case l4.Port == 0:
		case l4.EndPort > l4.Port:
			if port < l4.Port || port > l4.EndPort {
				continue
			}
		default:
			if port != l4.Port {
				continue
			}
		}
		for cs, sp := range l4.PerSelectorPolicies {
			if isDeny(sp) || !selects(epp, cs, e.nids[peer]) {
				continue
			}
			out = append(out, sp)
		}
	}
	return out
}

// dnsAllowed matches a name with the DNS proxy's own pattern for the rules.
func dnsAllowed(sps []*policy.PerSelectorPolicy, name string) (allowed bool, err error) {
	for _, sp := range sps {
		re, err := regexpCompile(dnsproxy.GeneratePattern(sp))
		if err != nil {
			return false, err
		}
		if re.MatchString(dnsName(name)) {
			return true, nil
		}
	}
	return false, nil
}

// policyError is Cilium refusing to compute an endpoint's policy (the agent then fails to regenerate the
// endpoint). It is an answer, not a failure of the oracle.
type policyError struct{ msg string }

func (e policyError) Error() string { return e.msg }
