// Package jsopt reads the options objects drills pass to firedrill's k6
// modules (k6/x/toxiproxy, k6/x/database) into option structs. It holds
// only the JS side, turning a sobek value into the map k6 would export;
// the rules and the error texts are internal/opts's, shared with the
// plain-Go packages that cannot import the JS runtime.
package jsopt

import (
	"errors"

	"github.com/grafana/sobek"

	"github.com/firedrill-dev/firedrill/internal/opts"
)

// Options returns the options object v as a map from option to exported
// value (int64 or float64 for numbers, []any for arrays, map[string]any
// for objects). A missing argument, undefined or null is an error, and so
// is anything that is not an object.
func Options(rt *sobek.Runtime, v sobek.Value) (map[string]any, error) {
	if v == nil || sobek.IsUndefined(v) || sobek.IsNull(v) {
		return nil, errors.New("missing options object")
	}
	m, ok := v.ToObject(rt).Export().(map[string]any)
	if !ok {
		return nil, errors.New("options must be an object")
	}
	return m, nil
}

// Decode reads the options object v into the option struct dst points to,
// by opts.Decode's rules.
func Decode(rt *sobek.Runtime, v sobek.Value, dst any) error {
	m, err := Options(rt, v)
	if err != nil {
		return err
	}
	return opts.Decode(m, dst)
}
