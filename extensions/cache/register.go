// Package cache is the k6 extension k6/x/cache: a thin JS adapter over the
// traffic engine (github.com/firedrill-dev/firedrill/traffic), which replays
// an IdentityCache-shaped fleet's cache traffic in Go. JS starts and steers
// the replay; no JS runs per cache operation.
package cache

import "go.k6.io/k6/v2/js/modules"

func init() {
	modules.Register("k6/x/cache", New())
}
