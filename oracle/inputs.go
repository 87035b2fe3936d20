package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// identityJSON is one identity of `harness eval --dump-identities` (documented in oracle/README.md).
type identityJSON struct {
	Name   string      `json:"name"`
	Kind   string      `json:"kind"`
	Labels []string    `json:"labels"`
	IP     string      `json:"ip,omitempty"`
	Ports  []namedPort `json:"ports,omitempty"`
}

type namedPort struct {
	Name     string `json:"name,omitempty"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
}

type identitiesFile struct {
	Cluster    string         `json:"cluster"`
	Identities []identityJSON `json:"identities"`
}

// identities is the loaded identities file.
type identities struct {
	cluster string
	list    []identityJSON
	addrs   []netip.Addr // parsed IPs (zero when none)
}

func loadIdentities(path string) (*identities, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, badInput("%s: cannot read: %v", path, err)
	}
	var f identitiesFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, badInput("%s: %v", path, err)
	}
	if f.Cluster == "" {
		return nil, badInput("%s: cluster: missing", path)
	}
	ids := &identities{cluster: f.Cluster, list: f.Identities}
	seen := map[string]bool{}
	for i, id := range f.Identities {
		if seen[id.Name] {
			return nil, badInput("%s: identities[%d].name: %q appears twice", path, i, id.Name)
		}
		seen[id.Name] = true
		var addr netip.Addr
		switch id.Kind {
		case "pod", "host", "remote-node", "kube-apiserver":
		case "world":
			a, err := netip.ParseAddr(id.IP)
			if err != nil {
				return nil, badInput("%s: identities[%d].ip: %q: %v", path, i, id.IP, err)
			}
			addr = a
		default:
			return nil, badInput("%s: identities[%d].kind: %q is not pod, world, host, remote-node or kube-apiserver", path, i, id.Kind)
		}
		for j, p := range id.Ports {
			if p.Protocol != "TCP" && p.Protocol != "UDP" && p.Protocol != "SCTP" {
				return nil, badInput("%s: identities[%d].ports[%d].protocol: %q", path, i, j, p.Protocol)
			}
		}
		ids.addrs = append(ids.addrs, addr)
	}
	return ids, nil
}

// resolve finds an identity by name or by IP address.
func (ids *identities) resolve(peer string) (int, bool) {
	for i, id := range ids.list {
		if id.Name == peer {
			return i, true
		}
	}
	if a, err := netip.ParseAddr(peer); err == nil {
		for i, ia := range ids.addrs {
			if ia.IsValid() && ia == a {
				return i, true
			}
		}
	}
	return 0, false
}

// policyDoc is one policy document, kept as JSON for Cilium's own types.
type policyDoc struct {
	file string
	line int
	kind string
	json []byte
}

func loadPolicyPath(path string) ([]policyDoc, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, badInput("%s: cannot read: %v", path, err)
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, badInput("%s: cannot read: %v", path, err)
		}
		files = nil
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
				files = append(files, filepath.Join(path, n))
			}
		}
		sort.Strings(files)
	}
	var out []policyDoc
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, badInput("%s: cannot read: %v", f, err)
		}
		d, err := parsePolicyText(f, raw)
		if err != nil {
			return nil, err
		}
		out = append(out, d...)
	}
	return out, nil
}

// parsePolicyText splits a YAML text into documents and keeps the Cilium policies.
func parsePolicyText(file string, raw []byte) ([]policyDoc, error) {
	var out []policyDoc
	lines := documentStartLines(raw)
	r := k8syaml.NewYAMLReader(bufioReader(raw))
	for n := 0; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, badInput("%s: %v", file, err)
		}
		line := 1
		if n < len(lines) {
			line = lines[n]
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, badInput("%s:%d: %v", file, line, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(js, &head); err != nil {
			return nil, badInput("%s:%d: %v", file, line, err)
		}
		switch head.Kind {
		case "CiliumNetworkPolicy", "CiliumClusterwideNetworkPolicy":
			out = append(out, policyDoc{file: file, line: line, kind: head.Kind, json: js})
		default:
			return nil, badInput("%s:%d: kind: %q is not CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy", file, line, head.Kind)
		}
	}
	return out, nil
}

// documentStartLines gives the 1-based first line of each non-empty YAML document.
func documentStartLines(raw []byte) []int {
	var starts []int
	start, content := 1, false
	for i, l := range strings.Split(string(raw), "\n") {
		t := strings.TrimRight(l, " \t\r")
		if t == "---" || strings.HasPrefix(t, "--- ") {
			if content {
				starts = append(starts, start)
			}
			start, content = i+2, false
			continue
		}
		s := strings.TrimSpace(t)
		if s != "" && !strings.HasPrefix(s, "#") {
			content = true
		}
	}
	if content {
		starts = append(starts, start)
	}
	return starts
}

// Query is one query of the query file (the format of `harness eval`).
type Query struct {
	ID       string          `json:"id"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Port     uint16          `json:"port"`
	Protocol string          `json:"protocol,omitempty"`
	Request  json.RawMessage `json:"request,omitempty"`
}

type queryFile struct {
	Workloads []json.RawMessage `json:"workloads"`
	Queries   []Query           `json:"queries"`
}

func loadQueries(path string) ([]Query, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, badInput("%s: cannot read: %v", path, err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, badInput("%s: %v", path, err)
	}
	var f queryFile
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, badInput("%s: %v", path, err)
	}
	return f.Queries, nil
}

// kafkaRequestSpec is one request of `kafkaRequests`.
type kafkaRequestSpec struct {
	APIKey     apiKey   `json:"apiKey"`
	APIVersion int16    `json:"apiVersion"`
	ClientID   string   `json:"clientId"`
	Topics     []string `json:"topics"`
}

// apiKey is a Kafka API key written as a number or as one of the names Cilium accepts in `apiKey`
// (proxylib's APIKeyMap).
type apiKey int16

func (k *apiKey) UnmarshalJSON(b []byte) error {
	var n int16
	if err := json.Unmarshal(b, &n); err == nil {
		if n < 0 {
			return fmt.Errorf("apiKey %d is negative", n)
		}
		*k = apiKey(n)
		return nil
	}
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("apiKey: a number or a name, not %s", b)
	}
	v, ok := apiKeyByName(name)
	if !ok {
		return fmt.Errorf("apiKey %q is not a Kafka API key name Cilium knows", name)
	}
	*k = apiKey(v)
	return nil
}

// request is the decoded `request` of a query.
type request struct {
	HTTP *struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Host    string            `json:"host"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
	} `json:"http"`
	HTTPS    json.RawMessage `json:"https"`
	TCP      json.RawMessage `json:"tcp"`
	Postgres json.RawMessage `json:"postgres"`
	Kafka    *struct {
		Action   string `json:"action"`
		Topic    string `json:"topic"`
		ClientID string `json:"clientId"`
		// Oracle only: the request frames a client really sent (hex, each with its 4-byte size), used
		// instead of the oracle's own encoding of the session (README, "Kafka on the wire").
		Wire []string `json:"wire"`
	} `json:"kafka"`
	// Kafka requests at the level the proxy sees them (`harness eval`'s `kafkaRequests`).
	KafkaRequests []kafkaRequestSpec `json:"kafkaRequests"`
	DNS           *struct {
		Query string `json:"query"`
	} `json:"dns"`
	// The Kafka wire frames as proxylib parsed them (set by decide, not read from the input).
	parsedWire kafkaMessages
}

func decodeRequest(where string, raw json.RawMessage) (*request, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var r request
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, badInput("%s: request: %v", where, err)
	}
	if r.HTTP != nil {
		if r.HTTP.Method == "" {
			r.HTTP.Method = "GET"
		}
		if r.HTTP.Path == "" {
			r.HTTP.Path = "/"
		}
	}
	if r.Kafka != nil && r.Kafka.Action != "produce" && r.Kafka.Action != "consume" {
		return nil, badInput("%s: request.kafka.action: %q is not produce or consume", where, r.Kafka.Action)
	}
	return &r, nil
}

func (q Query) protocol(r *request) (string, error) {
	switch q.Protocol {
	case "TCP", "UDP", "SCTP", "ICMP", "ICMPv6":
		// For ICMP the query's port is the ICMP type, as Cilium keys ICMP rules.
		return q.Protocol, nil
	case "":
		if r != nil && r.DNS != nil {
			return "UDP", nil
		}
		return "TCP", nil
	}
	return "", fmt.Errorf("protocol: %q is not TCP, UDP, SCTP, ICMP or ICMPv6", q.Protocol)
}

func bufioReader(raw []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(raw)) }
