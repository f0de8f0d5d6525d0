// Command k6 is k6 v2 with every firedrill extension compiled in: the short
// main package that `xk6 build --with` each extensions/ folder would generate.
package main

import (
	k6cmd "go.k6.io/k6/v2/cmd"

	// Each extension registers its k6/x/<name> module in init.
	_ "github.com/firedrill-dev/firedrill/extensions/cache"
	_ "github.com/firedrill-dev/firedrill/extensions/container"
	_ "github.com/firedrill-dev/firedrill/extensions/database"
	_ "github.com/firedrill-dev/firedrill/extensions/toxiproxy"
)

func main() {
	k6cmd.Execute()
}
