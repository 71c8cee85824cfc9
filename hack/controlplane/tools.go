//go:build tools

// Package controlplane pins the Kubernetes control-plane binaries that the
// local test cluster runs. build.sh compiles them from this module.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
