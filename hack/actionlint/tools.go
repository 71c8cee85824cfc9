//go:build tools

// Package actionlint pins the actionlint that `make test` runs on .github/workflows
// (tests/release/test_workflows.py): the workflows cannot run here, so they are linted.
package actionlint

import (
	_ "github.com/rhysd/actionlint/cmd/actionlint"
)
