package harness

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/firedrill-dev/firedrill/envvar"
)

// Param is one parameter a drill declares in its header:
//
//	@param NAME TYPE DEFAULT [PROFILE=VALUE ...] DESCRIPTION
//
// such as
//
//	@param rate         number  200                 operations per second
//	@param concurrency  number  8     protected=1   ALTERs run at once
//
// TYPE is number, string or bool (true or false). DEFAULT and the
// per-profile defaults are one word each (no spaces); a per-profile default
// replaces DEFAULT in that profile, and the profile must be one @expect
// declares. The first word after DEFAULT that is not PROFILE=VALUE starts
// the description, which is required.
type Param struct {
	Name     string
	Type     string            // ParamNumber, ParamString or ParamBool
	Default  string            // the value in every profile without its own
	Profiles map[string]string // profile -> its default where it differs; nil when none
	Desc     string
}

// Parameter types.
const (
	ParamNumber = "number"
	ParamString = "string"
	ParamBool   = "bool"
)

// ParamTypes are the types a @param line may declare.
var ParamTypes = []string{ParamNumber, ParamString, ParamBool}

// reservedParams would reach the script as a variable the harness already
// sets (FIREDRILL_PROFILE, FIREDRILL_SEED, ...), so no drill may declare them.
var reservedParams = []string{
	"db_flavor", "debug", "generator", "generators", "hdr_out", "memcached", "memcached_direct",
	"memcached_proxies", "mysql_admin_dsn", "mysql_dsn", "mysql_proxy", "out_dir", "params",
	"profile", "run_id", "seed", "toxiproxy",
}

var profileValueRE = regexp.MustCompile(`^([a-z][a-z0-9_-]*)=(\S+)$`)

// parseParam reads the text after "@param". Profiles are checked later,
// once the whole header (and its @expect) has been read.
func parseParam(text string) (Param, error) {
	f := strings.Fields(text)
	if len(f) < 4 {
		return Param{}, fmt.Errorf("want `@param NAME TYPE DEFAULT [PROFILE=VALUE ...] DESCRIPTION`, e.g. `@param rate number 200 operations per second`")
	}
	p := Param{Name: f[0], Type: f[1], Default: f[2]}
	if !nameRE.MatchString(p.Name) {
		return Param{}, fmt.Errorf("name %q: want lower_case letters, digits and _", p.Name)
	}
	if slices.Contains(reservedParams, p.Name) {
		return Param{}, fmt.Errorf("name %q is taken: the script already gets %s from the harness", p.Name, ParamVar(p.Name))
	}
	if !slices.Contains(ParamTypes, p.Type) {
		return Param{}, fmt.Errorf("%s: type %q: want one of %s", p.Name, p.Type, strings.Join(ParamTypes, ", "))
	}
	if _, err := p.Parse(p.Default); err != nil {
		return Param{}, fmt.Errorf("default: %w", err)
	}
	rest := f[3:]
	for len(rest) > 0 {
		m := profileValueRE.FindStringSubmatch(rest[0])
		if m == nil {
			break
		}
		if _, dup := p.Profiles[m[1]]; dup {
			return Param{}, fmt.Errorf("%s: profile %s has two defaults", p.Name, m[1])
		}
		if _, err := p.Parse(m[2]); err != nil {
			return Param{}, fmt.Errorf("default of profile %s: %w", m[1], err)
		}
		if p.Profiles == nil {
			p.Profiles = map[string]string{}
		}
		p.Profiles[m[1]] = m[2]
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return Param{}, fmt.Errorf("%s: no description: end the line with what the parameter is, e.g. `operations per second`", p.Name)
	}
	p.Desc = strings.Join(rest, " ")
	return p, nil
}

// Parse checks v against the parameter's type and returns it typed:
// float64, string or bool.
func (p Param) Parse(v string) (any, error) {
	switch p.Type {
	case ParamNumber:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsInf(n, 0) || math.IsNaN(n) {
			return nil, fmt.Errorf("%s is a number, got %q", p.Name, v)
		}
		return n, nil
	case ParamBool:
		switch v {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%s is a bool (true or false), got %q", p.Name, v)
	}
	return v, nil
}

// DefaultIn is the parameter's default in profile.
func (p Param) DefaultIn(profile string) string {
	if v, ok := p.Profiles[profile]; ok {
		return v
	}
	return p.Default
}

// ProfileDefaults is the per-profile defaults as "profile=value ...",
// sorted by profile; "" when there are none.
func (p Param) ProfileDefaults() string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(p.Profiles)) {
		out = append(out, k+"="+p.Profiles[k])
	}
	return strings.Join(out, " ")
}

// Param returns the declared parameter called name.
func (d Drill) Param(name string) (Param, bool) {
	for _, p := range d.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// ParamList names the drill's parameters with their types, for messages:
// "rate (number), table (string)", or "no parameters".
func (d Drill) ParamList() string {
	if len(d.Params) == 0 {
		return "no parameters"
	}
	var out []string
	for _, p := range d.Params {
		out = append(out, p.Name+" ("+p.Type+")")
	}
	return strings.Join(out, ", ")
}

// CheckValues checks parameter values (a --set, an @nightly line) against
// the declarations: every name declared, every value of its type.
func (d Drill) CheckValues(vals map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		p, ok := d.Param(k)
		if !ok {
			return fmt.Errorf("drill %s has no parameter %q; it takes %s (see `firedrill list %s`)", d.Name, k, d.ParamList(), d.Name)
		}
		if _, err := p.Parse(vals[k]); err != nil {
			return fmt.Errorf("drill %s: %w", d.Name, err)
		}
	}
	return nil
}

// Declared keeps the values whose names d declares: a nightly's --set
// applies to the drills that take it.
func (d Drill) Declared(vals map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range vals {
		if _, ok := d.Param(k); ok {
			out[k] = v
		}
	}
	return out
}

// ParamValue is one parameter resolved for a run.
type ParamValue struct {
	Name  string
	Type  string
	Value string // as written in the header or --set
	Typed any    // float64, string or bool
}

// Resolve gives every declared parameter its value in profile: the
// declared default, under the profile's default, under overrides (the
// @nightly short form and --set, see Overrides). An override the header
// does not declare, or of the wrong type, is an error.
func (d Drill) Resolve(profile string, overrides map[string]string) ([]ParamValue, error) {
	if err := d.CheckValues(overrides); err != nil {
		return nil, err
	}
	out := make([]ParamValue, 0, len(d.Params))
	for _, p := range d.Params {
		v := p.DefaultIn(profile)
		if o, ok := overrides[p.Name]; ok {
			v = o
		}
		typed, err := p.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("drill %s: %w", d.Name, err)
		}
		out = append(out, ParamValue{Name: p.Name, Type: p.Type, Value: v, Typed: typed})
	}
	return out, nil
}

// ParamsJSON is FIREDRILL_PARAMS: every resolved parameter, typed, as one
// JSON object, which param() in scenarios/lib/firedrill.js reads.
func ParamsJSON(vals []ParamValue) string {
	m := make(map[string]any, len(vals))
	for _, v := range vals {
		m[v.Name] = v.Typed
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Only float64, string and bool go in, and Parse rejects NaN and
		// infinities: Marshal cannot fail.
		panic(fmt.Sprintf("harness: params json: %v", err))
	}
	return string(b)
}

// ParamVars are the variables that carry resolved parameters to a script:
// FIREDRILL_PARAMS, and FIREDRILL_<NAME> for each, which scripts that read
// __ENV directly keep seeing.
func ParamVars(vals []ParamValue) []string {
	vars := []string{envvar.Params + "=" + ParamsJSON(vals)}
	for _, v := range vals {
		vars = append(vars, ParamVar(v.Name)+"="+v.Value)
	}
	return vars
}
