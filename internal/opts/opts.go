// Package opts decodes the options objects drills hand to firedrill's Go
// code into tagged structs. Values arrive as k6 exports a JS object:
// map[string]any holding int64, float64, string, bool, []any and
// map[string]any (Go callers may also pass int, []string and the like).
// It does not import the JS runtime, so plain-Go packages such as traffic
// use it as well as the extensions.
//
// One decoder means one set of rules and one wording of errors. Every error
// is one line, "option <path>: <what is wrong>", where the path names the
// option as the script wrote it (rate, protections.leaseTTL,
// stages[2].target) and the text says what the value must be and what was
// given, so a mistyped drill fails pointing at the typo. Keys are decoded
// in sorted order: of several mistakes the same one is reported every time.
//
// A struct field takes part when it has an opt tag; other fields are left
// alone. The tag is the option's name followed by flags:
//
//	Rate     float64        `opt:"rate,required"`
//	Arrivals string         `opt:"arrivals" enum:"uniform,poisson"`
//	Addrs    []string       `opt:"memcached,comma"`
//	Mix      Mix            `opt:",inline"`
//	Others   map[string]any `opt:",rest"`
//
// The flags:
//
//   - required: the key must be given (a steering call without its
//     argument); otherwise an absent key leaves the field as it was, so
//     the struct may hold defaults.
//   - comma: a list of strings may also be one comma-separated string
//     ("a:1, b:2"), as environment variables carry lists. Opt-in because
//     some strings hold commas (DECIMAL(10,2)).
//   - inline: the struct field's own options sit beside its parent's
//     (no name).
//   - rest: a map[string]any that collects the keys no field takes,
//     instead of those being errors (no name); for options passed on to
//     another decoder.
//
// An enum tag lists the values a string (or each string of a list) may
// take.
//
// Field types: string, bool, the int and uint types (a uint rejects
// negatives; a fraction is never an integer), float64 (finite),
// time.Duration (a Go duration string such as "30s", or a number of
// milliseconds, as k6 takes them), map[string]any (any object, kept as
// is), structs (an object, decoded by these rules), pointers to any of
// these (allocated when the key is given, so nil means "not given"),
// slices of any of these (a list), and types implementing Unmarshaler.
package opts

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Unmarshaler is implemented by option types with a syntax of their own,
// such as a value that may be a boolean or a number. The error it returns
// says what is wrong with v; Decode prefixes the option's path.
type Unmarshaler interface {
	UnmarshalOption(v any) error
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	objectType      = reflect.TypeFor[map[string]any]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

// Decode sets the fields of the struct dst points to from the options in
// m (nil is no options). An unknown key, a value of the wrong type or out
// of range, and a missing required option are errors naming the option.
// A struct whose tags or field types this package cannot honour is an
// error starting "opts:", whatever m holds, so a unit test that decodes
// it once catches the mistake.
func Decode(m map[string]any, dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("opts: Decode needs a non-nil pointer to a struct, got %T", dst)
	}
	if err := check(v.Elem().Type(), map[reflect.Type]bool{}); err != nil {
		return err
	}
	return decodeObject("", m, v.Elem())
}

// field is one option of a struct.
type field struct {
	key      string
	index    []int // for FieldByIndex; longer than 1 through inline structs
	required bool
	comma    bool
	enum     []string
}

// plan is what a struct type takes.
type plan struct {
	fields []field
	byKey  map[string]*field
	rest   []int // the rest field's index, nil without one
}

func planOf(t reflect.Type) (*plan, error) {
	p := &plan{byKey: map[string]*field{}}
	if err := p.add(t, nil); err != nil {
		return nil, err
	}
	for i := range p.fields {
		f := &p.fields[i]
		if p.byKey[f.key] != nil {
			return nil, fmt.Errorf("opts: %s: option %q declared twice", t, f.key)
		}
		p.byKey[f.key] = f
	}
	return p, nil
}

// add appends the options of struct type t, whose fields sit at prefix in
// the decoded struct.
func (p *plan) add(t reflect.Type, prefix []int) error {
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("opt")
		if !ok {
			continue
		}
		where := fmt.Sprintf("opts: %s.%s", t, sf.Name)
		name, flags, _ := strings.Cut(tag, ",")
		f := field{key: name, index: append(slices.Clone(prefix), i)}
		var inline, rest bool
		for _, fl := range strings.Split(flags, ",") {
			switch fl {
			case "":
			case "required":
				f.required = true
			case "comma":
				f.comma = true
			case "inline":
				inline = true
			case "rest":
				rest = true
			default:
				return fmt.Errorf("%s: unknown flag %q", where, fl)
			}
		}
		if e, ok := sf.Tag.Lookup("enum"); ok {
			f.enum = strings.Split(e, ",")
		}
		plain := name == "" && !f.required && !f.comma && f.enum == nil
		switch {
		case inline && rest:
			return fmt.Errorf("%s: inline and rest exclude each other", where)
		case inline:
			if !plain || sf.Type.Kind() != reflect.Struct || !sf.IsExported() && !sf.Anonymous {
				return fmt.Errorf("%s: inline needs an exported or embedded struct field without a name or other flags", where)
			}
			if err := p.add(sf.Type, f.index); err != nil {
				return err
			}
			continue
		case rest:
			if !plain || sf.Type != objectType || !sf.IsExported() {
				return fmt.Errorf("%s: rest needs an exported map[string]any field without a name or other flags", where)
			}
			if p.rest != nil {
				return fmt.Errorf("%s: a second rest field", where)
			}
			p.rest = f.index
			continue
		case name == "":
			return fmt.Errorf("%s: opt tag without a name", where)
		case !sf.IsExported():
			return fmt.Errorf("%s: unexported field", where)
		case f.enum != nil && !carriesString(sf.Type):
			return fmt.Errorf("%s: enum on a field that holds no string", where)
		case f.comma && !listOfStrings(sf.Type):
			return fmt.Errorf("%s: comma on a field that is not a list of strings", where)
		}
		p.fields = append(p.fields, f)
	}
	return nil
}

// own reports whether t decodes itself.
func own(t reflect.Type) bool { return reflect.PointerTo(t).Implements(unmarshalerType) }

// carriesString reports whether t is a string, or a pointer or list of
// them, that an enum can constrain.
func carriesString(t reflect.Type) bool {
	for !own(t) && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice) {
		t = t.Elem()
	}
	return !own(t) && t.Kind() == reflect.String
}

func listOfStrings(t reflect.Type) bool {
	for !own(t) && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return !own(t) && t.Kind() == reflect.Slice && !own(t.Elem()) && t.Elem().Kind() == reflect.String
}

// check validates struct type t and every struct type it reaches; seen
// stops recursive types.
func check(t reflect.Type, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	p, err := planOf(t)
	if err != nil {
		return err
	}
	for _, f := range p.fields {
		ft := t.FieldByIndex(f.index).Type
		base := ft
		for !own(base) && (base.Kind() == reflect.Pointer || base.Kind() == reflect.Slice) {
			base = base.Elem()
		}
		k := base.Kind()
		switch {
		case own(base) || base == objectType || k == reflect.String || k == reflect.Bool ||
			k == reflect.Float64 || isInt(k) || isUint(k):
		case k == reflect.Struct:
			if err := check(base, seen); err != nil {
				return err
			}
		default:
			return fmt.Errorf("opts: %s, option %q: unsupported type %s", t, f.key, ft)
		}
	}
	return nil
}

// isInt and isUint lean on reflect listing the int kinds, and the uint
// kinds, next to each other.
func isInt(k reflect.Kind) bool  { return k >= reflect.Int && k <= reflect.Int64 }
func isUint(k reflect.Kind) bool { return k >= reflect.Uint && k <= reflect.Uint64 }

func decodeObject(path string, m map[string]any, v reflect.Value) error {
	p, err := planOf(v.Type())
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		f := p.byKey[k]
		if f == nil {
			if p.rest == nil {
				return fail(join(path, k), "unknown (%s)", p.known())
			}
			rest := v.FieldByIndex(p.rest).Addr().Interface().(*map[string]any)
			if *rest == nil {
				*rest = map[string]any{}
			}
			(*rest)[k] = m[k]
			continue
		}
		if err := decodeValue(join(path, k), m[k], v.FieldByIndex(f.index), f); err != nil {
			return err
		}
	}
	for _, f := range p.fields {
		if _, given := m[f.key]; f.required && !given {
			return fail(join(path, f.key), "required but not given")
		}
	}
	return nil
}

func (p *plan) known() string {
	if len(p.fields) == 0 {
		return "takes no options"
	}
	return "known: " + strings.Join(slices.Sorted(maps.Keys(p.byKey)), ", ")
}

// decodeValue sets dst from v; f carries the field's enum and comma flag
// down to list elements and pointees.
func decodeValue(path string, v any, dst reflect.Value, f *field) error {
	t := dst.Type()
	if own(t) {
		if err := dst.Addr().Interface().(Unmarshaler).UnmarshalOption(v); err != nil {
			return fmt.Errorf("option %s: %w", path, err)
		}
		return nil
	}
	wrong := func() error { return fail(path, "must be %s, got %s", expect(t, f), describe(v)) }
	switch t {
	case durationType:
		d, ok := duration(v)
		if !ok {
			return wrong()
		}
		dst.SetInt(int64(d))
		return nil
	case objectType:
		o, ok := v.(map[string]any)
		if !ok {
			return wrong()
		}
		dst.Set(reflect.ValueOf(o))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok || f.enum != nil && !slices.Contains(f.enum, s) {
			return wrong()
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return wrong()
		}
		dst.SetBool(b)
	case reflect.Float64:
		n, ok := number(v)
		if !ok {
			return wrong()
		}
		x := toFloat(n)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fail(path, "must be a finite number, got %s", describe(v))
		}
		dst.SetFloat(x)
	case reflect.Pointer:
		if dst.IsNil() {
			dst.Set(reflect.New(t.Elem()))
		}
		return decodeValue(path, v, dst.Elem(), f)
	case reflect.Slice:
		if s, ok := v.(string); ok && f.comma {
			v = splitList(s)
		}
		l := reflect.ValueOf(v)
		if v == nil || l.Kind() != reflect.Slice && l.Kind() != reflect.Array {
			return wrong()
		}
		out := reflect.MakeSlice(t, l.Len(), l.Len())
		for i := range l.Len() {
			if err := decodeValue(fmt.Sprintf("%s[%d]", path, i), l.Index(i).Interface(), out.Index(i), f); err != nil {
				return err
			}
		}
		dst.Set(out)
	case reflect.Struct:
		o, ok := v.(map[string]any)
		if !ok {
			return wrong()
		}
		return decodeObject(path, o, dst)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return decodeInt(path, v, dst)
	default: // check let no other kind through
		return decodeUint(path, v, dst)
	}
	return nil
}

// expect says what a value of type t must be, for errors.
func expect(t reflect.Type, f *field) string {
	switch t {
	case durationType:
		return `a duration such as "30s" or a number of milliseconds`
	case objectType:
		return "an object"
	}
	switch t.Kind() {
	case reflect.String:
		if f.enum != nil {
			return "one of " + strings.Join(f.enum, ", ")
		}
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return expect(t.Elem(), f)
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice:
		s := "a list"
		if e := t.Elem(); !own(e) && e.Kind() == reflect.String {
			s = "a list of strings"
		} else if e.Kind() == reflect.Struct {
			s = "a list of objects"
		}
		if f.comma {
			s += " or a comma-separated string"
		}
		return s
	}
	if isInt(t.Kind()) {
		return "an integer"
	}
	return "a non-negative integer"
}

// number returns v when it is a Go number of any kind: the JS runtime
// hands over int64 and float64, Go callers int and others.
func number(v any) (reflect.Value, bool) {
	n := reflect.ValueOf(v)
	k := n.Kind()
	return n, isInt(k) || isUint(k) || k == reflect.Float32 || k == reflect.Float64
}

func toFloat(n reflect.Value) float64 {
	switch {
	case n.CanInt():
		return float64(n.Int())
	case n.CanUint():
		return float64(n.Uint())
	}
	return n.Float()
}

// integral reports whether float x is a whole number; JS has only
// floats, so 3.0 is as much an integer as 3.
func integral(x float64) bool { return !math.IsInf(x, 0) && x == math.Trunc(x) }

func decodeInt(path string, v any, dst reflect.Value) error {
	bits := dst.Type().Bits()
	lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
	outOfRange := func() error { return fail(path, "must be an integer in [%d, %d], got %s", lo, hi, describe(v)) }
	n, ok := number(v)
	var i int64
	switch {
	case !ok:
		return fail(path, "must be an integer, got %s", describe(v))
	case n.CanInt():
		i = n.Int()
	case n.CanUint():
		if n.Uint() > math.MaxInt64 {
			return outOfRange()
		}
		i = int64(n.Uint())
	default:
		x := n.Float()
		if !integral(x) {
			return fail(path, "must be an integer, got %s", describe(v))
		}
		if x < -0x1p63 || x >= 0x1p63 {
			return outOfRange()
		}
		i = int64(x)
	}
	if i < lo || i > hi {
		return outOfRange()
	}
	dst.SetInt(i)
	return nil
}

func decodeUint(path string, v any, dst reflect.Value) error {
	hi := uint64(math.MaxUint64) >> (64 - dst.Type().Bits())
	notUint := func() error { return fail(path, "must be a non-negative integer, got %s", describe(v)) }
	outOfRange := func() error { return fail(path, "must be an integer in [0, %d], got %s", hi, describe(v)) }
	n, ok := number(v)
	var u uint64
	switch {
	case !ok:
		return notUint()
	case n.CanInt():
		if n.Int() < 0 {
			return notUint()
		}
		u = uint64(n.Int())
	case n.CanUint():
		u = n.Uint()
	default:
		x := n.Float()
		if !integral(x) || x < 0 {
			return notUint()
		}
		if x >= 0x1p64 {
			return outOfRange()
		}
		u = uint64(x)
	}
	if u > hi {
		return outOfRange()
	}
	dst.SetUint(u)
	return nil
}

// duration reads a Go duration string or a number of milliseconds.
func duration(v any) (time.Duration, bool) {
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(s)
		return d, err == nil
	}
	n, ok := number(v)
	if !ok {
		return 0, false
	}
	// Rounded: 2.01 ms is 2009999.9999999998 ns in floating point.
	ns := math.Round(toFloat(n) * float64(time.Millisecond))
	if math.IsNaN(ns) || ns < -0x1p63 || ns >= 0x1p63 {
		return 0, false
	}
	return time.Duration(ns), true
}

// splitList splits a comma-separated list, dropping blanks, as the
// environment's lists are written ("a:1, b:2,").
func splitList(s string) []string {
	out := []string{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fail(path, format string, args ...any) error {
	return fmt.Errorf("option %s: %s", path, fmt.Sprintf(format, args...))
}

// join extends an option path by key. A key that is not a plain name is
// quoted, so a stray space or an empty key shows in the error.
func join(path, key string) string {
	if key == "" || strings.ContainsFunc(key, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '$' && r != '-'
	}) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what v is, in the script's terms, for errors; strings are
// cut short to keep the error one line of sensible length.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		const max = 40
		if len(x) > max {
			cut := max
			for cut > 0 && !utf8.RuneStart(x[cut]) {
				cut--
			}
			x = x[:cut] + "…"
		}
		return "string " + strconv.Quote(x)
	case bool:
		return "boolean " + strconv.FormatBool(x)
	}
	if n, ok := number(v); ok {
		switch {
		case n.CanInt():
			return "number " + strconv.FormatInt(n.Int(), 10)
		case n.CanUint():
			return "number " + strconv.FormatUint(n.Uint(), 10)
		}
		return "number " + strconv.FormatFloat(n.Float(), 'g', -1, 64)
	}
	switch reflect.ValueOf(v).Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
