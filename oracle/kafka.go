//go:build !cilium_v1_20

// The Kafka proxy (Cilium 1.19 and older; removed in 1.20): proxylib's request parser and rule matching.
// Kept apart from the rest so that a build for a release without Kafka rules can leave it out.

package main

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cilium/cilium/pkg/policy"
	kproto "github.com/cilium/kafka/proto"
	kafkaapi "github.com/cilium/proxy/pkg/policy/api/kafka"
	"github.com/cilium/proxy/proxylib/kafka/kafkalib"
)

// kafkaMessages are requests as proxylib's parser read them.
type kafkaMessages = []*kafkalib.RequestMessage

// apiKeyByName is the API key of a name Cilium accepts in `apiKey` (proxylib's APIKeyMap).
func apiKeyByName(name string) (int16, bool) {
	v, ok := kafkaapi.APIKeyMap[strings.ToLower(name)]
	return v, ok
}

// decideKafka applies the Kafka rules of a peer and port to a Kafka session or to Kafka requests.
func decideKafka(sps []*policy.PerSelectorPolicy, req *request) l7Result {
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
