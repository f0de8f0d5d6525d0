// Package jsopt reads the options objects drills pass to firedrill's k6
// modules (k6/x/toxiproxy, k6/x/database, k6/x/container). A value of the
// wrong kind is an error that names the option, so a mistyped drill fails
// with a message pointing at it. Which keys exist is the module's business:
// each rejects unknown keys itself, listing the ones it takes.
package jsopt

import (
	"errors"
	"fmt"

	"github.com/grafana/sobek"
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

// String returns option key's value v as a string.
func String(key string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("option %q must be a string", key)
	}
	return s, nil
}

// Number returns option key's value v as a float64.
func Number(key string, v any) (float64, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, fmt.Errorf("option %q must be a number", key)
}

// NonNegativeInt returns option key's value v as an int; a fraction or a
// negative number is an error.
func NonNegativeInt(key string, v any) (int, error) {
	switch x := v.(type) {
	case int64:
		if x >= 0 {
			return int(x), nil
		}
	case float64:
		if x >= 0 && x == float64(int64(x)) {
			return int(x), nil
		}
	}
	return 0, fmt.Errorf("option %q must be a non-negative integer", key)
}

// Bool returns option key's value v as a bool.
func Bool(key string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("option %q must be a boolean", key)
	}
	return b, nil
}

// Strings returns option key's value v, an array of strings, as a slice.
func Strings(key string, v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("option %q must be an array of strings", key)
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("option %q must be an array of strings", key)
		}
		out = append(out, s)
	}
	return out, nil
}

// Object returns option key's value v, itself an object (such as a toxic's
// attributes), as a map.
func Object(key string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("option %q must be an object", key)
	}
	return m, nil
}
