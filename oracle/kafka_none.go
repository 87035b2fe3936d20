//go:build cilium_v1_20

// Cilium 1.20 has no Kafka proxy: its policy API has no Kafka rules (a policy with them is refused), so no
// flow reaches Kafka rules and no request is read as Kafka.

package main

import (
	"errors"

	"github.com/cilium/cilium/pkg/policy"
)

// kafkaMessages: nothing is read as Kafka on this release.
type kafkaMessages = []struct{}

// wireRequest is the shape of a read frame (none are read on this release).
type wireRequest struct {
	APIKey     int16    `json:"api_key"`
	APIVersion int16    `json:"api_version"`
	ClientID   string   `json:"client_id"`
	Topics     []string `json:"topics"`
}

var errNoKafka = errors.New("Cilium 1.20 has no Kafka proxy (Kafka-aware policy was removed)")

func apiKeyByName(string) (int16, bool) { return 0, false }

// decideKafka: no peer and port has Kafka rules on this release, so the proxy in the way (for other L7
// rules) does not parse Kafka and lets the request through.
func decideKafka([]*policy.PerSelectorPolicy, *request) l7Result { return l7Result{} }

func parseWire([]string) (kafkaMessages, []wireRequest, error) { return nil, nil, errNoKafka }
