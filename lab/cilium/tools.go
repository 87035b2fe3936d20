//go:build tools

// Package tools names, for `go mod tidy`, the packages behind the main packages that
// scripts/lab-build.sh builds from the Cilium module (a module cannot import a main package).
package tools

import (
	_ "github.com/cilium/cilium/cilium-dbg/cmd"
	_ "github.com/cilium/cilium/daemon/cmd"
	_ "github.com/cilium/cilium/hubble-relay/cmd"
	_ "github.com/cilium/cilium/hubble/cmd"
	_ "github.com/cilium/cilium/operator/cmd"
	_ "github.com/cilium/cilium/plugins/cilium-cni/cmd"
)
