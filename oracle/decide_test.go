//go:build !cilium_v1_20

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cilium/proxy/proxylib/kafka/kafkalib"
)

// The requests the oracle encodes for a Kafka session are parsed back by proxylib with their key, client
// id and topic, and a produce rule for the topic and client allows them.
func TestKafkaSessionIsParsedAndMatchedByProxylib(t *testing.T) {
	for _, action := range []string{"produce", "consume"} {
		checkSession(t, action)
	}
}

func checkSession(t *testing.T, action string) {
	msgs, err := kafkaSession(action, "orders", "payment-service")
	if err != nil {
		t.Fatal(err)
	}
	keys := []int32{0, 3, 18}
	if action == "consume" {
		keys = []int32{1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18}
	}
	rule := kafkalib.NewRule(-1, keys, "payment-service", "orders")
	for i, raw := range msgs {
		m, err := kafkalib.ReadRequest(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		t.Logf("request %d: %s topics=%v", i, m.String(), m.GetTopics())
		if !rule.Matches(m) {
			t.Errorf("request %d (%s) is not allowed by the produce rule", i, m.String())
		}
	}
}

// Every request the generated differential asks for by API key and version (keys the library encodes,
// keys sent as a bare header; versions 0-2) is parsed back by proxylib.
func TestKafkaRequestsByKeyAreParsedByProxylib(t *testing.T) {
	for _, key := range []int16{0, 1, 2, 3, 4, 8, 9, 10, 18, 19} {
		for v := int16(0); v <= 2; v++ {
			raws, err := kafkaRequests([]kafkaRequestSpec{{APIKey: apiKey(key), APIVersion: v, ClientID: "c", Topics: []string{"a", "b"}}})
			if err != nil {
				t.Fatalf("key %d v%d: %v", key, v, err)
			}
			m, err := kafkalib.ReadRequest(bytes.NewReader(raws[0]))
			if err != nil {
				t.Fatalf("key %d v%d: proxylib cannot parse it: %v", key, v, err)
			}
			if m.GetAPIKey() != key || m.GetVersion() != v {
				t.Errorf("key %d v%d: read as key %d v%d", key, v, m.GetAPIKey(), m.GetVersion())
			}
		}
	}
}

// A field Cilium's types lack is refused, as a strict apply against the CRD refuses it.
func TestAPolicyWithAFieldCiliumsTypesLackIsRejected(t *testing.T) {
	doc := policyDoc{file: "t.yaml", line: 1, kind: "CiliumNetworkPolicy", json: []byte(`{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"p","namespace":"a"},"spec":{"endpointSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}],"rules":{"kafkaa":[{"topic":"t"}]}}]}]}}`)}
	st, _, _ := parseDoc(doc, "default")
	if st.Status != "rejected" || !strings.Contains(st.Reason, "kafkaa") {
		t.Fatalf("got %+v", st)
	}
	doc.json = []byte(`{"apiVersion":"cilium.io/v2","kind":"CiliumNetworkPolicy","metadata":{"name":"p","namespace":"a"},"spec":{"endpointSelector":{},"ingress":[{"toPorts":[{"ports":[{"port":"80","protocol":"TCP"}]}]}]}}`)
	if st, _, _ := parseDoc(doc, "default"); st.Status != "in-force" {
		t.Fatalf("a valid policy: %+v", st)
	}
}
