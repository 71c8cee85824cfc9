//go:build tools

// Package helm pins the Helm CLI that chart tests run (lint, template, install).
package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
