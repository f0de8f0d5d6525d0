// Package database is the k6/x/database module: drills inject database
// faults (connection cap, plan regression, DDL storm) and switch on
// protections (statement time limit, query killer) from their scenarios.
// The work is done by faults/database over the admin DSN; this package only
// adapts it to JavaScript and to k6 metrics.
package database

import "go.k6.io/k6/v2/js/modules"

func init() {
	modules.Register("k6/x/database", New())
}
