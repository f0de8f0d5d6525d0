package cache

import (
	"strings"
	"testing"

	"go.k6.io/k6/v2/js/modulestest"
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
		{`cache.setRate({ rat: 5 })`, `setRate: unknown option "rat"`},
		{`cache.setRate({})`, "setRate: option rate is required"},
		{`cache.setRate({ rate: "fast" })`, "setRate: option rate: must be a number"},
		{`cache.setRate({ rate: 5, name: 7 })`, "setRate: option name: must be a string"},
		{`cache.setRate({ rate: 5 })`, "setRate: no replay is running"},
		{`cache.flipFormat({})`, "flipFormat: option fraction is required"},
		{`cache.flipFormat({ fraction: 0.5, name: "flip" })`, "flipFormat: no replay is running"},
		{`cache.scale({ processes: 4, pool: 2 })`, `scale: unknown option "pool"`},
		{`cache.scale({ processes: 4 })`, "scale: no replay is running"},
		{`cache.expireHotSet({ keys: "all" })`, "expireHotSet: option keys: must be a number"},
		{`cache.expireHotSet({})`, "expireHotSet: no replay is running"},
		{`cache.setMix({ lookupFraction: 0, readFraction: 1 })`, `setMix: unknown option "readFraction"`},
		{`cache.setMix({ lookupFraction: false })`, "setMix: option lookupFraction: must be a number"},
		{`cache.setMix({ lookupFraction: 0 })`, "setMix: no replay is running"},
		{`cache.protections({ leases: true })`, "protections: no replay is running"},
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
}
