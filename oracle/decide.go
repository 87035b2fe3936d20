package main

// Deciding one query: the datapath's policy-map lookups at the source's egress and the destination's
// ingress, then, for a flow redirected to the proxy, the L7 rules the proxy enforces for that peer.

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"github.com/cilium/cilium/pkg/crypto/certificatemanager"
	envoypolicy "github.com/cilium/cilium/pkg/envoy/policy"
	"github.com/cilium/cilium/pkg/policy"
	"github.com/cilium/cilium/pkg/u8proto"
	"github.com/cilium/dns"
	cilium "github.com/cilium/proxy/go/cilium/api"
	envoy_config_route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	envoy_type_matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// verdict is the part of `harness eval`'s verdict that Cilium's engine decides.
type verdict struct {
	Decision   string `json:"decision"`
	Layer      string `json:"layer,omitempty"`
	Direction  string `json:"direction,omitempty"`
	DropReason string `json:"drop_reason,omitempty"`
	// Only for an L7 deny: what the proxy does (proxy_denied, kafka_topic_authorization_failed,
	// kafka_no_response, dns_refused).
	ExpectedOutcome string `json:"expected_outcome,omitempty"`
	Proxied         bool   `json:"proxied"`
	// The policies the deciding policy-map entry was derived from.
	Policies []string `json:"policies"`
	// The L7 rules that applied to this peer and port at the direction that decided at L7.
	L7Rules []json.RawMessage `json:"l7_rules,omitempty"`
	// For a denied Kafka session: the API key of the request the proxy refused.
	DeniedKafkaAPIKey *int16 `json:"denied_kafka_api_key,omitempty"`
	// Only when the query carried the frames a client sent: each frame as proxylib's parser read it.
	KafkaWire []wireRequest `json:"kafka_wire,omitempty"`
}

type answerSet struct {
	Policies []policyStatus
	Results  []result
}

func answer(ids *identities, docs []policyDoc, queries []Query, where string) (answerSet, error) {
	e, statuses := newEngine(ids, docs)
	out := answerSet{Policies: statuses, Results: []result{}}
	if out.Policies == nil {
		out.Policies = []policyStatus{}
	}
	for _, q := range queries {
		qwhere := fmt.Sprintf("%s: query %q", where, q.ID)
		v, err := e.decide(q, qwhere)
		var pe policyError
		switch {
		case errors.As(err, &pe):
			out.Results = append(out.Results, result{Query: q, Error: pe.Error()})
		case err != nil:
			return out, err
		default:
			out.Results = append(out.Results, result{Query: q, Verdict: &v})
		}
	}
	return out, nil
}

func (e *engine) decide(q Query, where string) (verdict, error) {
	req, err := decodeRequest(where, q.Request)
	if err != nil {
		return verdict{}, err
	}
	protoName, err := q.protocol(req)
	if err != nil {
		return verdict{}, badInput("%s: %v", where, err)
	}
	proto, _ := u8proto.ParseProtocol(protoName)
	from, ok := e.ids.resolve(q.From)
	if !ok {
		return verdict{}, badInput("%s: from: %q is not an identity of the identities file", where, q.From)
	}
	to, ok := e.ids.resolve(q.To)
	if !ok {
		return verdict{}, badInput("%s: to: %q is not an identity of the identities file", where, q.To)
	}
	v := verdict{Decision: "allow", Policies: []string{}}
	if req != nil && req.Kafka != nil && len(req.Kafka.Wire) > 0 {
		// Every frame is parsed whatever the policy: a frame proxylib cannot parse makes the proxy close
		// the connection (ERROR_INVALID_FRAME_TYPE) as soon as a Kafka rule redirects the flow.
		msgs, shown, err := parseWire(req.Kafka.Wire)
		if err != nil {
			return verdict{}, badInput("%s: request.kafka.wire: %v", where, err)
		}
		req.parsedWire = msgs
		v.KafkaWire = shown
	}
	type step struct {
		ep, peer int
		ingress  bool
	}
	var steps []step
	if e.ids.list[from].Kind == "pod" {
		steps = append(steps, step{from, to, false})
	}
	if e.ids.list[to].Kind == "pod" {
		steps = append(steps, step{to, from, true})
	}
	for _, s := range steps {
		dirName := "egress"
		if s.ingress {
			dirName = "ingress"
		}
		dv, epp, err := e.lookup(s.ep, s.peer, s.ingress, proto, q.Port)
		if err != nil {
			return verdict{}, err
		}
		v.Policies = appendUnique(v.Policies, dv.rules...)
		if dv.deny {
			v.Decision, v.Layer, v.Direction, v.Proxied = "deny", "l4", dirName, false
			v.DropReason = "POLICY_DENIED"
			if dv.explicit {
				v.DropReason = "POLICY_DENY"
			}
			v.Policies = dv.rules
			if v.Policies == nil {
				v.Policies = []string{}
			}
			return v, nil
		}
		if !dv.redirect {
			continue
		}
		v.Proxied = true
		sps := e.l7Policies(epp, s.ep, s.peer, s.ingress, proto, q.Port)
		l7 := decideL7(sps, req)
		if l7.err != nil {
			return verdict{}, fmt.Errorf("%s: %w", where, l7.err)
		}
		if l7.denied {
			v.Decision, v.Layer, v.Direction = "deny", "l7", dirName
			v.ExpectedOutcome = l7.outcome
			v.L7Rules = l7.rules
			v.DeniedKafkaAPIKey = l7.kafkaKey
			v.Policies = dv.rules
			return v, nil
		}
	}
	return v, nil
}

func appendUnique(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, l := range list {
			if l == it {
				found = true
				break
			}
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

type l7Result struct {
	denied   bool
	outcome  string
	rules    []json.RawMessage
	kafkaKey *int16
	err      error
}

// decideL7 applies the proxy's rules for one peer and port to the request.
func decideL7(sps []*policy.PerSelectorPolicy, req *request) l7Result {
	for _, sp := range sps {
		// An L3/L4-only allow for this peer and port: the proxy allows every request.
		if sp == nil || !sp.HasL7Rules() {
			return l7Result{}
		}
	}
	if req == nil {
		return l7Result{}
	}
	switch {
	case req.HTTP != nil:
		var rules []*cilium.HttpNetworkPolicyRule
		var shown []json.RawMessage
		for _, sp := range sps {
			if len(sp.HTTP) == 0 {
				continue
			}
			for _, h := range sp.HTTP {
				shown = append(shown, mustJSON(h))
			}
			er := envoyHTTPRules(sp)
			if er == nil {
				er, _ = translator().GetEnvoyHTTPRules(&sp.L7Rules, "")
			}
			if er != nil {
				rules = append(rules, er.HttpRules...)
			}
		}
		if len(shown) == 0 {
			return l7Result{}
		}
		for _, r := range rules {
			ok, err := httpRuleMatches(r, req)
			if err != nil {
				return l7Result{err: err}
			}
			if ok {
				return l7Result{}
			}
		}
		return l7Result{denied: true, outcome: "proxy_denied", rules: shown}
	case req.Kafka != nil || req.KafkaRequests != nil:
		return decideKafka(sps, req)
	case req.DNS != nil:
		var dnsSps []*policy.PerSelectorPolicy
		var shown []json.RawMessage
		for _, sp := range sps {
			if len(sp.DNS) > 0 {
				dnsSps = append(dnsSps, sp)
				for _, d := range sp.DNS {
					shown = append(shown, mustJSON(d))
				}
			}
		}
		if len(dnsSps) == 0 {
			return l7Result{}
		}
		ok, err := dnsAllowed(dnsSps, req.DNS.Query)
		if err != nil {
			return l7Result{err: err}
		}
		if ok {
			return l7Result{}
		}
		return l7Result{denied: true, outcome: "dns_refused", rules: shown}
	}
	// TLS, PostgreSQL, plain TCP: nothing the proxy parses.
	return l7Result{}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

var (
	translatorOnce sync.Once
	translatorV    envoypolicy.EnvoyL7RulesTranslator
)

func translator() envoypolicy.EnvoyL7RulesTranslator {
	translatorOnce.Do(func() {
		translatorV = envoypolicy.NewEnvoyL7RulesTranslator(logger, certificatemanager.NewMockSecretManagerInline())
	})
	return translatorV
}

var (
	reMu    sync.Mutex
	reCache = map[string]*regexp.Regexp{}
)

func regexpCompile(s string) (*regexp.Regexp, error) {
	reMu.Lock()
	defer reMu.Unlock()
	if re, ok := reCache[s]; ok {
		return re, nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, err
	}
	reCache[s] = re
	return re, nil
}

// dnsName is the name as the DNS proxy compares it: lower case, fully qualified.
func dnsName(name string) string { return strings.ToLower(dns.Fqdn(name)) }

// httpRuleMatches applies one of Cilium's Envoy HTTP rules as Envoy does: every header matcher must
// match. Envoy's safe_regex is RE2 matched against the whole value; Go's regexp is RE2.
func httpRuleMatches(r *cilium.HttpNetworkPolicyRule, req *request) (bool, error) {
	for _, hm := range r.Headers {
		ok, err := headerMatches(hm, req)
		if err != nil || !ok {
			return false, err
		}
	}
	// HeaderMatches carry mismatch actions other than "fail" (log, add, delete, replace): they never
	// refuse a request.
	return true, nil
}

func headerValue(req *request, name string) (string, bool) {
	h := req.HTTP
	switch name {
	case ":method":
		return h.Method, true
	case ":path":
		return h.Path, true
	case ":authority":
		if h.Host != "" {
			return h.Host, true
		}
		// The Host header of an HTTP/1.1 request becomes the authority; an empty one is none.
		for k, v := range h.Headers {
			if strings.EqualFold(k, "host") && v != "" {
				return v, true
			}
		}
		return "", false
	}
	for k, v := range h.Headers {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

func headerMatches(hm *envoy_config_route.HeaderMatcher, req *request) (bool, error) {
	val, present := headerValue(req, hm.Name)
	var matched bool
	switch spec := hm.HeaderMatchSpecifier.(type) {
	case *envoy_config_route.HeaderMatcher_PresentMatch:
		matched = present == spec.PresentMatch
	case *envoy_config_route.HeaderMatcher_StringMatch:
		if !present {
			matched = false
			break
		}
		sm := spec.StringMatch
		switch p := sm.MatchPattern.(type) {
		case *envoy_type_matcher.StringMatcher_Exact:
			if sm.IgnoreCase {
				matched = strings.EqualFold(val, p.Exact)
			} else {
				matched = val == p.Exact
			}
		case *envoy_type_matcher.StringMatcher_SafeRegex:
			re, err := regexpCompile("^(?:" + p.SafeRegex.Regex + ")$")
			if err != nil {
				return false, fmt.Errorf("regex %q: %w", p.SafeRegex.Regex, err)
			}
			matched = re.MatchString(val)
		case *envoy_type_matcher.StringMatcher_Prefix:
			matched = strings.HasPrefix(val, p.Prefix)
		case *envoy_type_matcher.StringMatcher_Suffix:
			matched = strings.HasSuffix(val, p.Suffix)
		case *envoy_type_matcher.StringMatcher_Contains:
			matched = strings.Contains(val, p.Contains)
		default:
			return false, fmt.Errorf("header matcher %q: string match %T is not evaluated by the oracle", hm.Name, p)
		}
	default:
		return false, fmt.Errorf("header matcher %q: %T is not evaluated by the oracle", hm.Name, spec)
	}
	if hm.InvertMatch {
		matched = !matched
	}
	return matched, nil
}
