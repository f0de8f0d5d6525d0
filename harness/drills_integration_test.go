//go:build integration

package harness

import "testing"

// The incident drills that reached both their verdicts three times in a
// row on a development machine, in a short form. Each runs both profiles
// through the CLI, one after the other, each in a fresh environment; the
// run must exit 0 (every profile reached its declared verdict) and each
// result must say so. Drills not yet reliable run under the drillwip tag
// (drills_wip_test.go).
func TestIncidentDrills(t *testing.T) {
	bin, k6 := drillCLI(t)
	for _, c := range []drillCase{
		{name: "cache-format-flip", set: []string{"steady=8", "flipped=8", "expiry=12"}},
		{name: "connection-storm", set: []string{"before=6", "observe=21"}},
	} {
		t.Run(c.name, func(t *testing.T) { runDrillBothVerdicts(t, bin, k6, c) })
	}
}
