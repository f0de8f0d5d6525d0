package cache

import (
	"strings"
	"testing"

	"go.k6.io/k6/v2/js/modulestest"

	"github.com/firedrill-dev/firedrill/internal/opts"
	"github.com/firedrill-dev/firedrill/traffic"
)

// The steering calls share one prologue: option errors first (so a typo
// shows even where no replay runs), then the running replay. Without a
// replay no call may act.
func TestSteeringArgumentsAndNoReplay(t *testing.T) {
	rt := modulestest.NewRuntime(t)
	mi := New().NewModuleInstance(rt.VU).(*ModuleInstance)
	if err := rt.VU.Runtime().Set("cache", mi.Exports().Named); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ js, want string }{
		{`cache.setRate({ rat: 5 })`, "setRate: option rat: unknown (known: name, rate)"},
		{`cache.setRate({})`, "setRate: option rate: required but not given"},
		{`cache.setRate({ rate: "fast" })`, `setRate: option rate: must be a number, got string "fast"`},
		{`cache.setRate({ rate: NaN })`, "setRate: option rate: must be a finite number, got number NaN"},
		{`cache.setRate({ rate: 5, name: 7 })`, "setRate: option name: must be a string, got number 7"},
		{`cache.setRate({ rate: 5 })`, "setRate: no replay is running"},
		{`cache.flipFormat({})`, "flipFormat: option fraction: required but not given"},
		{`cache.flipFormat({ fraction: 0.5, name: "flip" })`, "flipFormat: no replay is running"},
		{`cache.scale({ processes: 4, pool: 2 })`, "scale: option pool: unknown (known: name, processes)"},
		{`cache.scale({ processes: 2.5 })`, "scale: option processes: must be an integer, got number 2.5"},
		{`cache.scale({ processes: 4 })`, "scale: no replay is running"},
		{`cache.expireHotSet({ keys: "all" })`, `expireHotSet: option keys: must be an integer, got string "all"`},
		{`cache.expireHotSet({})`, "expireHotSet: no replay is running"},
		{`cache.setMix({ lookupFraction: 0, readFraction: 1 })`, "setMix: option readFraction: unknown (known: lookupFraction, multiFraction, name, requestFraction, tenantWriteFraction, writeFraction)"},
		{`cache.setMix({ lookupFraction: false })`, "setMix: option lookupFraction: must be a number, got boolean false"},
		{`cache.setMix({ lookupFraction: 0 })`, "setMix: no replay is running"},
		{`cache.protections({ leases: true, name: 1 })`, "protections: option name: must be a string, got number 1"},
		{`cache.protections({ leases: true })`, "protections: no replay is running"},
		{`cache.hotSetKeys({ count: "3" })`, `hotSetKeys: option count: must be an integer, got string "3"`},
		{`cache.hotSetKeys({ count: 3, rowz: 5 })`, `hotSetKeys: option rowz: unknown`},
	} {
		_, err := rt.VU.Runtime().RunString(tc.js)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", tc.js, err, tc.want)
		}
	}
	st, err := rt.VU.Runtime().RunString(`cache.status().running`)
	if err != nil || st.ToBoolean() {
		t.Errorf("status().running = %v (%v), want false without a replay", st, err)
	}
	// hotSetKeys needs no replay: count, and the rest as replay options.
	n, err := rt.VU.Runtime().RunString(`cache.hotSetKeys({ count: 3, rows: 1000, namespace: "x" }).length`)
	if err != nil || n.ToInteger() != 3 {
		t.Errorf("hotSetKeys length = %v (%v), want 3", n, err)
	}
}

// setMix changes the shares given and keeps the others.
func TestMixArgsKeepSharesNotGiven(t *testing.T) {
	var a mixArgs
	if err := opts.Decode(map[string]any{"lookupFraction": int64(0), "requestFraction": 0.25, "name": "lookups off"}, &a); err != nil {
		t.Fatal(err)
	}
	m := traffic.Mix{WriteFraction: 0.1, MultiFraction: 0.2, LookupFraction: 0.3, TenantWriteFraction: 0.05}
	a.apply(&m)
	want := traffic.Mix{WriteFraction: 0.1, MultiFraction: 0.2, LookupFraction: 0, TenantWriteFraction: 0.05, RequestFraction: 0.25}
	if m != want || a.Name != "lookups off" {
		t.Errorf("mix %+v name %q, want %+v", m, a.Name, want)
	}
}

func TestStreamFollowsTheExecutionSegment(t *testing.T) {
	for seg, want0 := range map[string]bool{"0:1": true, "0:1/2": true, "": true, "1/2:1": false, "1/3:2/3": false} {
		if got := stream(seg); (got == 0) != want0 {
			t.Errorf("stream(%q) = %d: want 0 only for the first segment", seg, got)
		}
	}
	if stream("1/3:2/3") == stream("2/3:1") {
		t.Error("two generators' segments gave one stream")
	}
}
