//go:build tools

// Package tools names, for `go mod tidy`, the packages behind the main packages that
// scripts/lab-build.sh builds from k8s.io/kubernetes (a module cannot import a main package).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)
