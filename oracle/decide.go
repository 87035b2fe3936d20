package main

// Deciding one query: the datapath's policy-map lookups at the source's egress and the destination's
// ingress, then, for a flow redirected to the proxy, the L7 rules the proxy enforces for that peer.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
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
	kproto "github.com/cilium/kafka/proto"
	cilium "github.com/cilium/proxy/go/cilium/api"
	"github.com/cilium/proxy/proxylib/kafka/kafkalib"
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
			er := sp.EnvoyHTTPRules()
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
		var rules []kafkalib.Rule
		var shown []json.RawMessage
		for _, sp := range sps {
			for _, k := range sp.Kafka {
				shown = append(shown, mustJSON(k))
				rules = append(rules, kafkalib.NewRule(k.GetAPIVersion(), k.GetAPIKeys(), k.ClientID, k.Topic))
			}
		}
		if len(shown) == 0 {
			return l7Result{}
		}
		msgs := req.parsedWire
		if msgs == nil {
			var raws [][]byte
			var err error
			if req.KafkaRequests != nil {
				raws, err = kafkaRequests(req.KafkaRequests)
			} else {
				raws, err = kafkaSession(req.Kafka.Action, req.Kafka.Topic, req.Kafka.ClientID)
			}
			if err != nil {
				return l7Result{err: err}
			}
			for _, raw := range raws {
				m, err := kafkalib.ReadRequest(bytes.NewReader(raw))
				if err != nil {
					return l7Result{err: fmt.Errorf("proxylib cannot parse the Kafka request: %w", err)}
				}
				msgs = append(msgs, m)
			}
		}
		for _, m := range msgs {
			allowed := false
			for _, r := range rules {
				if r.Matches(m) {
					allowed = true
					break
				}
			}
			if !allowed {
				key := m.GetAPIKey()
				outcome := "kafka_topic_authorization_failed"
				if _, err := m.CreateAuthErrorResponse(); err != nil {
					outcome = "kafka_no_response"
				}
				return l7Result{denied: true, outcome: outcome, rules: shown, kafkaKey: &key}
			}
		}
		return l7Result{}
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

// The request versions the agent's `exact` Kafka mode sends by default (workloads/agent/README.md):
// Metadata v1, Produce v3, ListOffsets v1, Fetch v4.
const (
	metadataVersion    = 1
	produceVersion     = 3
	listOffsetsVersion = 1
	fetchVersion       = 4
)

// kafkaSession encodes the requests the agent's `exact` Kafka mode sends for an action (Metadata naming
// the topic, then Produce, or ListOffsets and Fetch), at the agent's default versions, with the Kafka
// client library Cilium's proxylib parses with.
func kafkaSession(action, topic, clientID string) ([][]byte, error) {
	meta := &kproto.MetadataReq{Version: metadataVersion, ClientID: clientID, Topics: []string{topic}}
	var reqs []interface{ Bytes(int16) ([]byte, error) }
	reqs = append(reqs, meta)
	if action == "produce" {
		reqs = append(reqs, &kproto.ProduceReq{
			Version: produceVersion, ClientID: clientID, RequiredAcks: 1,
			// No records: above v0 the library's record encoder and proxylib's decoder disagree, and the
			// rules never look at records.
			Topics: []kproto.ProduceReqTopic{{Name: topic, Partitions: []kproto.ProduceReqPartition{{ID: 0}}}},
		})
	} else {
		reqs = append(reqs,
			&kproto.OffsetReq{Version: listOffsetsVersion, ClientID: clientID, ReplicaID: -1, Topics: []kproto.OffsetReqTopic{{
				Name: topic, Partitions: []kproto.OffsetReqPartition{{ID: 0, TimeMs: -2, MaxOffsets: 1}},
			}}},
			&kproto.FetchReq{Version: fetchVersion, ClientID: clientID, ReplicaID: -1, MinBytes: 1, MaxBytes: 1 << 20, Topics: []kproto.FetchReqTopic{{
				Name: topic, Partitions: []kproto.FetchReqPartition{{ID: 0, FetchOffset: 0, MaxBytes: 1 << 20}},
			}}},
		)
	}
	var out [][]byte
	for i, r := range reqs {
		b, err := r.Bytes(requestVersion(r))
		if err != nil {
			return nil, fmt.Errorf("encoding Kafka request %d: %w", i, err)
		}
		out = append(out, b)
	}
	return out, nil
}

func requestVersion(r any) int16 {
	switch v := r.(type) {
	case *kproto.MetadataReq:
		return v.Version
	case *kproto.ProduceReq:
		return v.Version
	case *kproto.OffsetReq:
		return v.Version
	case *kproto.FetchReq:
		return v.Version
	}
	return 0
}

// wireRequest is one client frame as proxylib's Kafka parser read it.
type wireRequest struct {
	APIKey     int16    `json:"api_key"`
	APIVersion int16    `json:"api_version"`
	ClientID   string   `json:"client_id"`
	Topics     []string `json:"topics"`
}

// parseWire reads the frames a client sent (hex, each with its 4-byte size) with proxylib's
// kafkalib.ReadRequest, the parser Cilium's Envoy runs on every request of a redirected connection.
func parseWire(frames []string) ([]*kafkalib.RequestMessage, []wireRequest, error) {
	var msgs []*kafkalib.RequestMessage
	var shown []wireRequest
	for i, h := range frames {
		raw, err := hex.DecodeString(h)
		if err != nil {
			return nil, nil, fmt.Errorf("frame %d is not hex: %v", i, err)
		}
		if len(raw) < 8 {
			return nil, nil, fmt.Errorf("frame %d has %d bytes, fewer than a size and a request header", i, len(raw))
		}
		size := int(binary.BigEndian.Uint32(raw[:4]))
		if size != len(raw)-4 {
			return nil, nil, fmt.Errorf("frame %d: its size field says %d bytes, %d follow", i, size, len(raw)-4)
		}
		m, err := kafkalib.ReadRequest(bytes.NewReader(raw))
		if err != nil {
			key := int16(binary.BigEndian.Uint16(raw[4:6]))
			version := int16(binary.BigEndian.Uint16(raw[6:8]))
			return nil, nil, fmt.Errorf("proxylib cannot parse frame %d (API key %d, version %d): %v; "+
				"the proxy would close the connection", i, key, version, err)
		}
		topics := m.GetTopics()
		if topics == nil {
			topics = []string{}
		}
		msgs = append(msgs, m)
		shown = append(shown, wireRequest{APIKey: m.GetAPIKey(), APIVersion: m.GetVersion(),
			ClientID: wireClientID(raw), Topics: topics})
	}
	return msgs, shown, nil
}

// wireClientID is the client id of a request header (v1 and later), read as proxylib reads it: a
// 2-byte length after the API key, version and correlation id; empty for v0 requests, whose client id
// proxylib does not read.
func wireClientID(raw []byte) string {
	if len(raw) < 14 || int16(binary.BigEndian.Uint16(raw[6:8])) == 0 {
		return ""
	}
	n := int(int16(binary.BigEndian.Uint16(raw[12:14])))
	if n <= 0 || 14+n > len(raw) {
		return ""
	}
	return string(raw[14 : 14+n])
}

// kafkaRequests encodes requests given by API key, version, client id and topics: with the Kafka library
// proxylib parses with for the keys proxylib decodes (produce, fetch, offsets, metadata, offset commit and
// fetch, find coordinator), otherwise as a bare request header, which is all proxylib reads of them.
func kafkaRequests(specs []kafkaRequestSpec) ([][]byte, error) {
	var out [][]byte
	for i, r := range specs {
		var enc interface{ Bytes(int16) ([]byte, error) }
		switch int16(r.APIKey) {
		case int16(kproto.ProduceReqKind):
			topics := make([]kproto.ProduceReqTopic, 0, len(r.Topics))
			for _, t := range r.Topics {
				topics = append(topics, kproto.ProduceReqTopic{Name: t, Partitions: []kproto.ProduceReqPartition{{ID: 0}}})
			}
			enc = &kproto.ProduceReq{Version: r.APIVersion, ClientID: r.ClientID, RequiredAcks: 1, Topics: topics}
		case int16(kproto.FetchReqKind):
			topics := make([]kproto.FetchReqTopic, 0, len(r.Topics))
			for _, t := range r.Topics {
				topics = append(topics, kproto.FetchReqTopic{Name: t, Partitions: []kproto.FetchReqPartition{{ID: 0, MaxBytes: 1 << 20}}})
			}
			enc = &kproto.FetchReq{Version: r.APIVersion, ClientID: r.ClientID, ReplicaID: -1, MinBytes: 1, MaxBytes: 1 << 20, Topics: topics}
		case int16(kproto.OffsetReqKind):
			topics := make([]kproto.OffsetReqTopic, 0, len(r.Topics))
			for _, t := range r.Topics {
				topics = append(topics, kproto.OffsetReqTopic{Name: t, Partitions: []kproto.OffsetReqPartition{{ID: 0, TimeMs: -2, MaxOffsets: 1}}})
			}
			enc = &kproto.OffsetReq{Version: r.APIVersion, ClientID: r.ClientID, ReplicaID: -1, Topics: topics}
		case int16(kproto.MetadataReqKind):
			// An empty list, not a null one (which asks for every topic from v1 on).
			enc = &kproto.MetadataReq{Version: r.APIVersion, ClientID: r.ClientID, Topics: append([]string{}, r.Topics...)}
		case int16(kproto.OffsetCommitReqKind):
			topics := make([]kproto.OffsetCommitReqTopic, 0, len(r.Topics))
			for _, t := range r.Topics {
				topics = append(topics, kproto.OffsetCommitReqTopic{Name: t, Partitions: []kproto.OffsetCommitReqPartition{{ID: 0}}})
			}
			enc = &kproto.OffsetCommitReq{Version: r.APIVersion, ClientID: r.ClientID, ConsumerGroup: "g", Topics: topics}
		case int16(kproto.OffsetFetchReqKind):
			topics := make([]kproto.OffsetFetchReqTopic, 0, len(r.Topics))
			for _, t := range r.Topics {
				topics = append(topics, kproto.OffsetFetchReqTopic{Name: t, Partitions: []int32{0}})
			}
			enc = &kproto.OffsetFetchReq{Version: r.APIVersion, ClientID: r.ClientID, ConsumerGroup: "g", Topics: topics}
		case int16(kproto.ConsumerMetadataReqKind):
			enc = &kproto.ConsumerMetadataReq{Version: r.APIVersion, ClientID: r.ClientID, ConsumerGroup: "g"}
		}
		if enc == nil {
			out = append(out, headerOnly(r))
			continue
		}
		b, err := enc.Bytes(r.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("encoding Kafka request %d (API key %d v%d): %w", i, int16(r.APIKey), r.APIVersion, err)
		}
		if int16(r.APIKey) == int16(kproto.ConsumerMetadataReqKind) && r.APIVersion >= 1 {
			// The library's encoder leaves out the coordinator type (v1 and later) that a client sends
			// and that its decoder, proxylib's, reads.
			b = append(b, 0)
			binary.BigEndian.PutUint32(b, uint32(len(b)-4))
		}
		out = append(out, b)
	}
	return out, nil
}

// headerOnly is a request of a key proxylib does not decode: size, API key, version, correlation id and
// client id.
func headerOnly(r kafkaRequestSpec) []byte {
	body := make([]byte, 10+len(r.ClientID))
	binary.BigEndian.PutUint16(body[0:2], uint16(r.APIKey))
	binary.BigEndian.PutUint16(body[2:4], uint16(r.APIVersion))
	binary.BigEndian.PutUint32(body[4:8], 1)
	binary.BigEndian.PutUint16(body[8:10], uint16(len(r.ClientID)))
	copy(body[10:], r.ClientID)
	frame := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	return append(frame, body...)
}
