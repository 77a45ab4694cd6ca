//go:build tools

// Package tools pins the Helm CLI the e2e suite builds.
// `e2e/setup` runs `go build helm.sh/helm/v3/cmd/helm` with this module's go.mod
// (Helm's own main package), stamping the version like Helm's Makefile does.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
