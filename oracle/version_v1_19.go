//go:build !cilium_v1_18 && !cilium_v1_20

package main

// The Cilium release this build answers for (go.mod).
const (
	ciliumRelease = "v1.19.7"
	pinnedMinor   = "1.19"
)
