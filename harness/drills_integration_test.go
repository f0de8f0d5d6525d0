//go:build integration

package harness

import "testing"

// Every incident drill in its short form (firedrill run --short: the
// @nightly parameters its header declares), the form the nightly runs, so
// what CI proves is what the nightly judges. Each runs both profiles
// through the CLI, one after the other, each in a fresh environment; the
// run must exit 0 (every profile reached its declared verdict) and each
// result must say so. The drills of a service under test (app-*) run
// against the example service, built by `make images`.
func TestIncidentDrills(t *testing.T) {
	bin, k6 := drillCLI(t)
	ds, err := LoadDrills("../scenarios")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		if d.Incident == "" || d.Incident == "none" {
			continue
		}
		n++
		c := drillCase{name: d.Name, short: true, params: d.Nightly, dbArgs: d.DBArgs}
		if d.UsesApp() {
			c.extra = exampleService(d)
		}
		t.Run(c.name, func(t *testing.T) { runDrillBothVerdicts(t, bin, k6, c) })
	}
	if n < 9 {
		t.Errorf("found %d incident drills under scenarios/, want the 6 of the incident reports and the 3 of a service under test", n)
	}
}
