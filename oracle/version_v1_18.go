//go:build cilium_v1_18

package main

// The Cilium release this build answers for (go build -modfile=go.v1.18.mod -tags cilium_v1_18).
const (
	ciliumRelease = "v1.18.3"
	pinnedMinor   = "1.18"
)
