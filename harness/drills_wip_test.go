//go:build drillwip

package harness

import "testing"

// Incident drills that do not yet reach both their verdicts reliably (three
// times in a row) on a development machine. They stay out of `make test`
// (tag integration) and run with `go test -tags drillwip ./harness/`; each
// moves to drills_integration_test.go once it is reliable.
func TestIncidentDrillsWIP(t *testing.T) {
	bin, k6 := drillCLI(t)
	for _, c := range []drillCase{
		{name: "hot-key-expiry", set: []string{"table=none,leases"}},
		{name: "ddl-storm", set: []string{"duration=45", "storm_from=10", "storm=25"}},
		{name: "unreachable-dependency", set: []string{"duration=40", "fault_from=10", "fault_to=28"}},
	} {
		t.Run(c.name, func(t *testing.T) { runDrillBothVerdicts(t, bin, k6, c) })
	}
}
