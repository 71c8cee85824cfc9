//go:build tools

// Package node pins the Kubernetes node binaries (kubelet, kube-scheduler,
// kube-proxy) that `tokenwarden dev-cluster --node` runs, and the kubectl that
// the end-to-end tests drive it with. They come from the
// same k8s.io/kubernetes version as the control plane in ../controlplane; a
// unit test keeps the two pins equal.
package node

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
