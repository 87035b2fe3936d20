//go:build cilium_v1_20

package main

// The Cilium release this build answers for: go build -modfile=go.v1.20.mod -tags cilium_v1_20.
const (
	ciliumRelease = "v1.20.2"
	pinnedMinor   = "1.20"
)
