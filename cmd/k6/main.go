// Command k6 is k6 v2 with every firedrill extension compiled in: the short
// main package that `xk6 build --with` each extensions/ folder would generate.
package main

import (
	k6cmd "go.k6.io/k6/v2/cmd"
	// Extensions register their k6/x/<name> modules in init.
)

func main() {
	k6cmd.Execute()
}
