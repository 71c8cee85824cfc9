//go:build tools

// Package promtool pins the Prometheus promtool that the chart's alert-rule tests run
// (promtool test rules). Built with the tag remove_all_sd: promtool needs no service discovery.
package promtool

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
