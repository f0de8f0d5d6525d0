package traffic

import (
	"context"
	"errors"

	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/firedrill-dev/firedrill/internal/opts"

	"github.com/firedrill-dev/firedrill/traffic/format"
	"github.com/firedrill-dev/firedrill/traffic/memcache"
)

// A protection is one thing a drill proves: a fill lock, leases, a retry
// budget, a circuit breaker. Each lives in its own file (protect_*.go) and
// registers itself from an init func, as Toxiproxy's toxics do: its
// options (with their defaults), the operation kinds it works on, the
// protections it cannot be combined with, the counters it keeps, and the
// hooks it uses. Option parsing, conflict checks, the JS status and
// summary, the typings test and the README's table all derive from the
// registry, so adding a protection is one new file and its tests.

// Spec is what the registry knows of a protection.
type Spec struct {
	// Name is the key under a replay's protections that turns it on.
	Name string
	// Doc says in a line what it does.
	Doc string
	// Ops are the operation kinds it works on. Where an operation has the
	// thing a protection's hooks act on (a fill, a database read, a cache
	// call) but is not among its Ops, the combination is refused, not
	// silently ignored.
	Ops []string
	// Conflicts names protections it cannot be combined with.
	Conflicts []string
	// Counters are the metrics it counts (k6 counters, tagged process),
	// each with its key in a replay's summary.
	Counters []CounterSpec
	// New returns an instance with the defaults: its options struct,
	// whose fields are tagged with the option keys (`opt:"leaseTries"`).
	New func() Protection
}

// CounterSpec is a protection's counter: its k6 metric and its key in a
// replay's summary.
type CounterSpec struct {
	Metric, Summary string
}

// Protection is one configured protection: its options, and the hooks it
// implements (fillHook, ttlHook, hitHook, dbHook, retryHook, cacheHook,
// readHook, tierHook, runHook).
type Protection interface {
	// Enabled says whether its options turn it on.
	Enabled() bool
	// Validate checks its options together; an error starts with the key
	// of the option at fault ("leaseTTL: ...").
	Validate() error
}

// Operation kinds as protections name them.
const (
	KindFetch  = "fetch"       // a single fetch
	KindMulti  = "fetch_multi" // a multi-key fetch
	KindWrite  = "write"       // a record update (with its invalidation) or a tenant write
	KindLookup = "lookup"      // an uncached query by an indexed column
	// KindRequest is a request: calls to the cache tier in sequence.
	KindRequest = "request"
)

// hookKinds are the operation kinds that have what each hook acts on.
var hookKinds = []struct {
	what  string
	kinds []string
	has   func(Protection) bool
}{
	{"fill", []string{KindFetch, KindMulti}, func(p Protection) bool { _, ok := p.(fillHook); return ok }},
	{"stored TTL", []string{KindFetch, KindMulti}, func(p Protection) bool { _, ok := p.(ttlHook); return ok }},
	{"cache hit", []string{KindFetch, KindMulti}, func(p Protection) bool { _, ok := p.(hitHook); return ok }},
	{"database call", []string{KindFetch, KindMulti, KindWrite, KindLookup}, func(p Protection) bool { _, ok := p.(dbHook); return ok }},
	{"retried read", []string{KindFetch, KindMulti}, func(p Protection) bool { _, ok := p.(retryHook); return ok }},
	{"cache call", []string{KindFetch, KindMulti, KindWrite, KindRequest}, func(p Protection) bool { _, ok := p.(cacheHook); return ok }},
	{"cache read", []string{KindFetch, KindMulti}, func(p Protection) bool { _, ok := p.(readHook); return ok }},
	{"tier call", []string{KindRequest}, func(p Protection) bool { _, ok := p.(tierHook); return ok }},
}

var registry = map[string]Spec{}

// Register adds a protection to the registry; its file's init func calls
// it. A second registration of a name, or an option key another protection
// owns, panics: that is a programming error.
func Register(s Spec) {
	if _, dup := registry[s.Name]; dup {
		panic("traffic: protection " + s.Name + " registered twice")
	}
	keys := optionKeys(s.New())
	if !slices.Contains(keys, s.Name) {
		panic("traffic: protection " + s.Name + " has no option of its own name")
	}
	for _, k := range keys {
		if owner, taken := keyOwner[k]; taken {
			panic("traffic: option " + k + " of " + s.Name + " is already " + owner + "'s")
		}
		keyOwner[k] = s.Name
	}
	registry[s.Name] = s
}

var keyOwner = map[string]string{}

// Registered returns every protection's spec, by name.
func Registered() []Spec {
	out := make([]Spec, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// OptionDefault is one option key of a protection and its default value.
type OptionDefault struct {
	Key     string
	Default any
}

// Options lists a protection's option keys with their defaults.
func (s Spec) Options() []OptionDefault {
	p := s.New()
	var out []OptionDefault
	for _, k := range optionKeys(p) {
		out = append(out, OptionDefault{k, optionValues(p)[k]})
	}
	return out
}

// Protections are a replay's protections: every registered one with its
// options, on or off. The zero value has none on; NewProtections has them
// all with their defaults.
type Protections struct {
	set map[string]Protection
	on  []string // enabled, in name order

	fill  []fillHook
	ttl   []ttlHook
	hit   []hitHook
	db    []dbHook
	retry []retryHook
	read  []readHook
	tier  []tierHook
}

// NewProtections returns every registered protection with its defaults:
// all off.
func NewProtections() Protections {
	p := Protections{set: map[string]Protection{}}
	for name, s := range registry {
		p.set[name] = s.New()
	}
	p.wire()
	return p
}

// clone copies p and its protections, so a change to the copy (a running
// replay's protections()) does not reach the replay until it is stored.
func (p Protections) clone() Protections {
	c := Protections{set: map[string]Protection{}}
	for name, pr := range p.set {
		c.set[name] = cloneProtection(pr)
	}
	c.wire()
	return c
}

// wire lists what is on and gathers the hooks, in name order (fill hooks
// coalesce before locking across processes; see fillChain).
func (p *Protections) wire() {
	p.on = nil
	p.fill, p.ttl, p.hit, p.db, p.retry, p.read, p.tier = nil, nil, nil, nil, nil, nil, nil
	names := make([]string, 0, len(p.set))
	for n := range p.set {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		pr := p.set[n]
		if !pr.Enabled() {
			continue
		}
		p.on = append(p.on, n)
		if h, ok := pr.(fillHook); ok {
			p.fill = append(p.fill, h)
		}
		if h, ok := pr.(ttlHook); ok {
			p.ttl = append(p.ttl, h)
		}
		if h, ok := pr.(hitHook); ok {
			p.hit = append(p.hit, h)
		}
		if h, ok := pr.(dbHook); ok {
			p.db = append(p.db, h)
		}
		if h, ok := pr.(retryHook); ok {
			p.retry = append(p.retry, h)
		}
		if h, ok := pr.(readHook); ok {
			p.read = append(p.read, h)
		}
		if h, ok := pr.(tierHook); ok {
			p.tier = append(p.tier, h)
		}
	}
	// Coalescing inside a process goes first: of a process's callers, only
	// the leader then takes the fill lock or the lease.
	slices.SortStableFunc(p.fill, func(a, b fillHook) int { return a.fillOrder() - b.fillOrder() })
}

// On returns the names of the protections that are on.
func (p Protections) On() []string { return slices.Clone(p.on) }

// Get returns the named protection (on or off), or nil.
func (p Protections) Get(name string) Protection { return p.set[name] }

// Apply sets options from a JS-style map: each key belongs to one
// protection (its own name turns it on); keys not given keep their value.
// It validates the result, conflicts included.
func (p *Protections) Apply(m map[string]any) error {
	if p.set == nil {
		*p = NewProtections()
	}
	byOwner := map[string]map[string]any{}
	for k, v := range m {
		owner, ok := keyOwner[k]
		if !ok {
			return fmt.Errorf("unknown option \"protections.%s\" (protections and their options: %s)", k, strings.Join(allOptionKeys(), ", "))
		}
		if byOwner[owner] == nil {
			byOwner[owner] = map[string]any{}
		}
		byOwner[owner][k] = v
	}
	for owner, sub := range byOwner {
		if err := decodeOptions(sub, p.set[owner]); err != nil {
			return fmt.Errorf("option %w", err)
		}
	}
	p.wire()
	return p.validate()
}

func allOptionKeys() []string {
	ks := make([]string, 0, len(keyOwner))
	for k := range keyOwner {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// validate checks each protection's options and that no two that are on
// conflict.
func (p *Protections) validate() error {
	for _, name := range sortedNames(p.set) {
		// Validate's errors start with the option's key.
		if err := p.set[name].Validate(); err != nil {
			return fmt.Errorf("option protections.%w", err)
		}
	}
	for _, a := range p.on {
		for _, b := range registry[a].Conflicts {
			if slices.Contains(p.on, b) {
				return fmt.Errorf("option protections: %s and %s cannot be combined (%s); turn one off", a, b, registry[a].Doc)
			}
		}
	}
	return nil
}

func sortedNames(m map[string]Protection) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkKinds refuses a protection that is on while the mix has an
// operation kind with what its hooks act on that it does not work on.
func (p *Protections) checkKinds(m Mix) error {
	for _, kind := range m.kinds() {
		for _, name := range p.on {
			s, pr := registry[name], p.set[name]
			if slices.Contains(s.Ops, kind) {
				continue
			}
			for _, h := range hookKinds {
				if h.has(pr) && slices.Contains(h.kinds, kind) {
					return fmt.Errorf("protection %s does not work on %s operations (%s), and the mix has them (%s): turn one off",
						name, kind, h.what, m.share(kind))
				}
			}
		}
	}
	return nil
}

// Status returns every option of every protection, for cache.status().
func (p Protections) Status() map[string]any {
	out := map[string]any{}
	for _, name := range sortedNames(p.set) {
		for k, v := range optionValues(p.set[name]) {
			if d, ok := v.(time.Duration); ok {
				v = d.String()
			}
			out[k] = v
		}
	}
	return out
}

// Hooks. A protection implements those it uses.

// fillHook runs around the fill of one key by a single fetch: it may call
// next (load and store), wait for another caller's fill, or load without
// storing. Its error is the one that lost the row (as next's).
type fillHook interface {
	fill(f *fillCall, next func() error) error
	// fillOrder places it in the chain: lower runs outside.
	fillOrder() int
}

// fillCall is one fill in progress.
type fillCall struct {
	ctx context.Context
	w   *worker
	p   *process
	key string
	id  uint64
	v   format.Version
	// store writes the loaded entry; a hook may replace it (leases store
	// with the meta protocol, which answers the lease).
	store func(ctx context.Context, key string, val []byte, ttl int) error
}

// ttlHook shapes the TTLs of an entry being stored: when readers take it
// as expired (logical) and when memcached drops it (stored).
type ttlHook interface {
	ttl(w *worker, logical, stored time.Duration) (time.Duration, time.Duration)
}

// hitAction is what a reader does with an entry it found.
type hitAction int

const (
	serve        hitAction = iota // fresh: serve it
	serveStale                    // expired but servable: serve, refresh in the background
	refreshEarly                  // fresh, but refill now (and serve the refill)
	treatAsMiss                   // expired: fill
)

// hitHook decides what a reader does with an entry it decoded. expired
// says whether its logical TTL passed. The first hook that does not answer
// serve or treatAsMiss decides.
type hitHook interface {
	onHit(w *worker, ent format.Entry, now time.Time, expired bool) hitAction
}

// dbHook runs around one database call of an operation: a fill's read, a
// lookup, a write. It may refuse it (shed) instead of calling next.
type dbHook interface {
	db(w *worker, p *process, next func() error) error
}

// retryHook governs the app's retries of a fill's read (cfg.Retries): the
// wait before a retry, and whether it may be made at all.
type retryHook interface {
	// attempt records a first attempt of a read by p.
	attempt(p *process, now time.Time)
	// mayRetry says whether retry number n (1 for the first) may be made
	// now, and after how long a wait.
	mayRetry(w *worker, p *process, n int, now time.Time) (time.Duration, bool)
}

// cacheHook configures the memcached client: it acts on every cache call.
type cacheHook interface {
	clientOptions() []memcache.Option
}

// readHook changes how readers decode entries.
type readHook interface {
	reader(r format.Reader) format.Reader
}

// tierHook runs around one call of a request to the cache tier (a get, and
// a set when it missed): it may skip the call instead of calling next.
// Its error is counted and the request goes on: the app rescues cache
// errors.
type tierHook interface {
	tierCall(w *worker, p *process, next func() error) error
}

// runHook runs beside a replay's traffic until its operations are done,
// whether the protection is on or not: it can be turned on while the
// replay runs, so it reads its current options from the engine.
type runHook interface {
	run(ctx context.Context, e *Engine)
}

// processHook sets up per-process state when a process starts.
type processHook interface {
	newProcess(p *process, now time.Time)
}

// counter adds n to a protection's counter for process p.
func (w *worker) counter(p *process, metric string, n int64) {
	w.e.stats.addNamed(p.idx, metric, n)
}

// graceHook is a protection that keeps entries servable past their expiry:
// an expiry of the hot set rewrites them as expired instead of deleting.
type graceHook interface {
	grace() time.Duration
}

// grace is how long expired entries stay servable (0: they do not).
func (p *Protections) grace() time.Duration {
	var g time.Duration
	for _, name := range p.on {
		if h, ok := p.set[name].(graceHook); ok {
			g = max(g, h.grace())
		}
	}
	return g
}

// clientOptions are the memcached client options of the protections that
// act on every cache call.
func (p *Protections) clientOptions() []memcache.Option {
	var out []memcache.Option
	for _, name := range p.on {
		if h, ok := p.set[name].(cacheHook); ok {
			out = append(out, h.clientOptions()...)
		}
	}
	return out
}

// clientOptionsFor are the memcached client options of the protections
// that act on every cache call of operations of kind (a client that serves
// only those, as the tier's serves requests).
func (p *Protections) clientOptionsFor(kind string) []memcache.Option {
	var out []memcache.Option
	for _, name := range p.on {
		if h, ok := p.set[name].(cacheHook); ok && slices.Contains(registry[name].Ops, kind) {
			out = append(out, h.clientOptions()...)
		}
	}
	return out
}

// sameClient refuses a change, while a replay runs, to a protection that
// configures the memcached client: the client is built when it starts.
func (p *Protections) sameClient(next Protections) error {
	for _, name := range sortedNames(p.set) {
		if _, ok := p.set[name].(cacheHook); !ok {
			continue
		}
		if !reflect.DeepEqual(optionValues(p.set[name]), optionValues(next.set[name])) {
			return fmt.Errorf("protection %s configures the memcached client: set it in the replay's options, not while it runs", name)
		}
	}
	return nil
}

// A protection's options are the fields of its struct tagged `opt:"key"`.

func optionFields(p Protection) (reflect.Value, []reflect.StructField) {
	v := reflect.ValueOf(p).Elem()
	var fs []reflect.StructField
	for _, f := range reflect.VisibleFields(v.Type()) {
		if f.Tag.Get("opt") != "" {
			fs = append(fs, f)
		}
	}
	return v, fs
}

// optionKeys are p's option keys, in field order.
func optionKeys(p Protection) []string {
	_, fs := optionFields(p)
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Tag.Get("opt")
	}
	return out
}

// optionValues are p's options by key.
func optionValues(p Protection) map[string]any {
	v, fs := optionFields(p)
	out := make(map[string]any, len(fs))
	for _, f := range fs {
		x := v.FieldByIndex(f.Index).Interface()
		if j, ok := x.(jitter); ok {
			x = float64(j)
		}
		out[f.Tag.Get("opt")] = x
	}
	return out
}

// cloneProtection copies p's options into a new instance.
func cloneProtection(p Protection) Protection {
	v := reflect.ValueOf(p).Elem()
	c := reflect.New(v.Type())
	c.Elem().Set(v)
	return c.Interface().(Protection)
}

// decodeOptions sets p's options from m (keys p owns) with the shared
// decoder; its errors name the option under protections.
func decodeOptions(m map[string]any, p Protection) error {
	if err := opts.Decode(m, p); err != nil {
		return errors.New("protections." + strings.TrimPrefix(err.Error(), "option "))
	}
	return nil
}
