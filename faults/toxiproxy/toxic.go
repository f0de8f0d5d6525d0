package toxiproxy

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Stream names: which direction of a proxied connection a toxic acts on.
// Downstream is server to client (what a client sees as a slow reply).
const (
	Downstream = "downstream"
	Upstream   = "upstream"
)

// toxicAttributes lists every toxic type Toxiproxy v2.5 ships and the
// attributes each accepts. Checking here, before the HTTP call, turns a typo
// in a drill into an error naming it instead of a toxic that silently does
// nothing (Toxiproxy ignores unknown attributes).
var toxicAttributes = map[string][]string{
	"latency":    {"latency", "jitter"},
	"bandwidth":  {"rate"},
	"slow_close": {"delay"},
	"timeout":    {"timeout"},
	"reset_peer": {"timeout"},
	"limit_data": {"bytes"},
	"slicer":     {"average_size", "size_variation", "delay"},
}

// ToxicTypes returns the toxic types this client accepts, sorted.
func ToxicTypes() []string {
	out := make([]string, 0, len(toxicAttributes))
	for t := range toxicAttributes {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Toxic is one toxic on a proxy, as Toxiproxy's API describes it.
type Toxic struct {
	// Name identifies the toxic on its proxy. Empty means "<type>_<stream>",
	// the name Toxiproxy itself would pick.
	Name string `json:"name"`
	// Type is one of ToxicTypes().
	Type string `json:"type"`
	// Stream is Downstream (the default when empty) or Upstream.
	Stream string `json:"stream"`
	// Toxicity is the probability in [0, 1] that a connection gets the
	// toxic. Nil means 1 (every connection): a pointer because 0 is a valid
	// toxicity (armed but inactive) and must not be confused with "unset".
	Toxicity *float64 `json:"toxicity,omitempty"`
	// Attributes are the type's parameters, all non-negative integers:
	// latency{latency,jitter} ms, bandwidth{rate} KB/s, slow_close{delay} ms,
	// timeout{timeout} ms (0 = forever), reset_peer{timeout} ms,
	// limit_data{bytes}, slicer{average_size,size_variation} bytes and
	// {delay} µs.
	Attributes map[string]any `json:"attributes"`
}

// Float returns a pointer to v, for Toxic.Toxicity.
func Float(v float64) *float64 { return &v }

// normalize fills defaults and validates t; it returns the toxic to send.
func (t Toxic) normalize() (Toxic, error) {
	allowed, ok := toxicAttributes[t.Type]
	if !ok {
		return t, fmt.Errorf("unknown toxic type %q (want one of %s)", t.Type, strings.Join(ToxicTypes(), ", "))
	}
	if t.Stream == "" {
		t.Stream = Downstream
	}
	if t.Stream != Downstream && t.Stream != Upstream {
		return t, fmt.Errorf("toxic %q: bad stream %q (want downstream or upstream)", t.Type, t.Stream)
	}
	if t.Name == "" {
		t.Name = t.Type + "_" + t.Stream
	}
	if t.Toxicity == nil {
		t.Toxicity = Float(1)
	}
	if err := checkToxicity(*t.Toxicity); err != nil {
		return t, fmt.Errorf("toxic %q: %w", t.Name, err)
	}
	attrs, err := normalizeAttributes(t.Type, allowed, t.Attributes)
	if err != nil {
		return t, fmt.Errorf("toxic %q: %w", t.Name, err)
	}
	t.Attributes = attrs
	return t, nil
}

func checkToxicity(v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fmt.Errorf("toxicity %v out of [0, 1]", v)
	}
	return nil
}

// normalizeAttributes checks names against the type and converts values to
// int64, because Toxiproxy decodes every attribute into an integer field and
// JavaScript hands us float64 for every number.
func normalizeAttributes(typ string, allowed []string, in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if !slices.Contains(allowed, k) {
			return nil, fmt.Errorf("unknown attribute %q for %s (want %s)", k, typ, strings.Join(allowed, ", "))
		}
		n, err := toInt(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %w", k, err)
		}
		out[k] = n
	}
	return out, nil
}

var errNotInt = errors.New("want a non-negative integer")

func toInt(v any) (int64, error) {
	var f float64
	switch x := v.(type) {
	case int:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("%d: %w", x, errNotInt)
		}
		return x, nil
	case float32:
		f = float64(x)
	case float64:
		f = x
	default:
		return 0, fmt.Errorf("%v (%T): %w", v, v, errNotInt)
	}
	if f < 0 || f != math.Trunc(f) || f > math.MaxInt64/2 {
		return 0, fmt.Errorf("%v: %w", v, errNotInt)
	}
	return int64(f), nil
}
