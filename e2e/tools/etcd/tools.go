//go:build tools

// Package tools pins the etcd server the e2e suite builds.
// `e2e/setup` runs `go build go.etcd.io/etcd/server/v3` (the module root is
// etcd's main package) with this module's go.mod.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
