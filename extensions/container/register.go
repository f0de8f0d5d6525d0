// Package container is the k6/x/container module: drills stop, kill and
// pause a server container of their own run, and bring it back. The work is
// done by faults/container through the Docker Engine API; this package only
// adapts it to JavaScript and to k6 metrics.
package container

import "go.k6.io/k6/v2/js/modules"

func init() {
	modules.Register("k6/x/container", New())
}
