// Package toxiproxy is the k6/x/toxiproxy module: drills add, change and
// remove Toxiproxy toxics and partition proxies from fault scenarios
// scheduled with startTime. The work is done by faults/toxiproxy; this
// package only adapts it to JavaScript and to k6 metrics.
package toxiproxy

import "go.k6.io/k6/v2/js/modules"

func init() {
	modules.Register("k6/x/toxiproxy", New())
}
