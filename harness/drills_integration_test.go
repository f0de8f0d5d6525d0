//go:build integration

package harness

import "testing"

// Every incident drill, in a short form. Each runs both profiles
// through the CLI, one after the other, each in a fresh environment; the
// run must exit 0 (every profile reached its declared verdict) and each
// result must say so.
func TestIncidentDrills(t *testing.T) {
	bin, k6 := drillCLI(t)
	for _, c := range []drillCase{
		{name: "cache-format-flip", set: []string{"steady=8", "flipped=8", "expiry=12"}},
		{name: "connection-storm", set: []string{"before=6", "observe=21"}},
		{name: "hot-key-expiry", set: []string{"table=none,leases"}},
		{name: "ddl-storm", set: []string{"duration=45", "storm_from=10", "storm=25"}},
		{name: "unreachable-dependency", set: []string{"duration=40", "fault_from=10", "fault_to=28"}},
		{name: "plan-regression", set: []string{"warmup=8", "duration=40", "fault_from=8", "fault_to=28"}},
	} {
		t.Run(c.name, func(t *testing.T) { runDrillBothVerdicts(t, bin, k6, c) })
	}
}
