// Package toxiproxy is a small client for Toxiproxy's HTTP API that injects
// network faults on the harness's proxies. Every call is bounded by a timeout,
// every injection and removal is reported as a faults.Event, and the client
// remembers what it added and disabled so Cleanup can undo exactly that.
package toxiproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/firedrill-dev/firedrill/faults"
)

// DefaultTimeout bounds every API call when WithTimeout is not given. Toxiproxy
// answers in microseconds on loopback; seconds mean it is gone.
const DefaultTimeout = 5 * time.Second

// PartitionFault is the fault kind reported when a proxy is disabled: every
// connection through it is refused, as in a network partition.
const PartitionFault = "partition"

// ErrNotFound is returned (wrapped) when Toxiproxy answers 404: no such proxy
// or toxic.
var ErrNotFound = errors.New("not found")

// Proxy is one proxy as Toxiproxy's API describes it.
type Proxy struct {
	Name     string  `json:"name"`
	Listen   string  `json:"listen"`
	Upstream string  `json:"upstream"`
	Enabled  bool    `json:"enabled"`
	Toxics   []Toxic `json:"toxics"`
}

// Injector is what drills need from a Toxiproxy client; *Client implements it.
type Injector interface {
	AddToxic(ctx context.Context, proxy string, t Toxic) (Toxic, error)
	UpdateToxic(ctx context.Context, proxy, name string, u Update) (Toxic, error)
	RemoveToxic(ctx context.Context, proxy, name string) error
	Disable(ctx context.Context, proxy string) error
	Enable(ctx context.Context, proxy string) error
	Proxies(ctx context.Context) ([]Proxy, error)
	Cleanup(ctx context.Context) error
}

var _ Injector = (*Client)(nil)

// Option configures a Client.
type Option func(*Client)

// WithTimeout bounds each API call (default DefaultTimeout).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithHTTPClient sets the HTTP client (default: a fresh client with no
// keep-alive pooling quirks beyond net/http's defaults).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithRecorder sets where timeline events go (default faults.Discard).
func WithRecorder(r faults.Recorder) Option { return func(c *Client) { c.rec = r } }

// Client talks to one Toxiproxy server. It is safe for concurrent use; copies
// made by WithRecorder share what was added, so any of them can clean up.
type Client struct {
	base    string
	http    *http.Client
	timeout time.Duration
	rec     faults.Recorder
	state   *state
}

// state is what this run changed, kept so Cleanup undoes exactly that and
// never touches toxics someone else added.
type state struct {
	mu       sync.Mutex
	added    map[toxicKey]string // -> toxic type, for the removal event
	disabled map[string]bool
}

type toxicKey struct{ proxy, name string }

// New returns a client for the Toxiproxy API at baseURL (http://host:port).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("toxiproxy: bad API URL %q (want http://host:port)", baseURL)
	}
	c := &Client{
		base:    strings.TrimRight(baseURL, "/"),
		http:    &http.Client{},
		timeout: DefaultTimeout,
		rec:     faults.Discard,
		state:   &state{added: map[toxicKey]string{}, disabled: map[string]bool{}},
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// WithRecorder returns a client that reports to r and shares c's record of
// what was added; the k6 extension uses it to report to the calling VU.
func (c *Client) WithRecorder(r faults.Recorder) *Client {
	cp := *c
	cp.rec = r
	return &cp
}

// Proxies lists every proxy, sorted by name.
func (c *Client) Proxies(ctx context.Context) ([]Proxy, error) {
	var m map[string]Proxy
	if err := c.do(ctx, http.MethodGet, "/proxies", nil, &m); err != nil {
		return nil, fmt.Errorf("toxiproxy list proxies: %w", err)
	}
	out := make([]Proxy, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Proxy returns one proxy with its toxics.
func (c *Client) Proxy(ctx context.Context, name string) (Proxy, error) {
	var p Proxy
	if err := c.do(ctx, http.MethodGet, "/proxies/"+url.PathEscape(name), nil, &p); err != nil {
		return p, fmt.Errorf("toxiproxy get proxy %q: %w", name, err)
	}
	return p, nil
}

// CreateProxy adds an enabled proxy that listens on listen (an address
// inside the Toxiproxy process) and forwards to upstream. The environment
// puts one in front of every server with it. It reports no event: a new
// proxy is topology, not a fault.
func (c *Client) CreateProxy(ctx context.Context, name, listen, upstream string) error {
	if name == "" || listen == "" || upstream == "" {
		return errors.New("toxiproxy create proxy: missing name, listen or upstream address")
	}
	body := map[string]any{"name": name, "listen": listen, "upstream": upstream, "enabled": true}
	if err := c.do(ctx, http.MethodPost, "/proxies", body, nil); err != nil {
		return fmt.Errorf("toxiproxy create proxy %q: %w", name, err)
	}
	return nil
}

// Reset removes every toxic and enables every proxy, whoever changed them:
// the harness's backstop after k6 exits, whatever the script did or failed
// to undo. Unlike Cleanup it does not know what was changed, so it reports
// no events, and it leaves this client's record of what it added alone.
func (c *Client) Reset(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/reset", nil, nil); err != nil {
		return fmt.Errorf("toxiproxy reset: %w", err)
	}
	return nil
}

// AddToxic validates t, adds it to proxy and reports an inject event.
func (c *Client) AddToxic(ctx context.Context, proxy string, t Toxic) (Toxic, error) {
	if proxy == "" {
		return t, errors.New("toxiproxy add toxic: missing proxy name")
	}
	t, err := t.normalize()
	if err != nil {
		return t, fmt.Errorf("toxiproxy add toxic on %q: %w", proxy, err)
	}
	var got Toxic
	path := "/proxies/" + url.PathEscape(proxy) + "/toxics"
	if err := c.do(ctx, http.MethodPost, path, t, &got); err != nil {
		return t, fmt.Errorf("toxiproxy add toxic %q on %q: %w", t.Name, proxy, err)
	}
	c.state.mu.Lock()
	c.state.added[toxicKey{proxy, t.Name}] = t.Type
	c.state.mu.Unlock()
	c.rec.Record(faults.Event{Fault: t.Type, Action: faults.Inject, Target: proxy, Name: t.Name})
	return got, nil
}

// Update changes an existing toxic; nil fields stay as they are.
type Update struct {
	Toxicity   *float64       `json:"toxicity,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// UpdateToxic changes a toxic's toxicity or attributes. It reports an inject
// event: from then on the toxic acts with its new settings, and the timeline
// shows when that began.
func (c *Client) UpdateToxic(ctx context.Context, proxy, name string, u Update) (Toxic, error) {
	if proxy == "" || name == "" {
		return Toxic{}, errors.New("toxiproxy update toxic: missing proxy or toxic name")
	}
	cur, err := c.toxic(ctx, proxy, name)
	if err != nil {
		return cur, fmt.Errorf("toxiproxy update toxic %q on %q: %w", name, proxy, err)
	}
	if u.Toxicity != nil {
		if err := checkToxicity(*u.Toxicity); err != nil {
			return cur, fmt.Errorf("toxiproxy update toxic %q on %q: %w", name, proxy, err)
		}
	}
	if u.Attributes != nil {
		u.Attributes, err = normalizeAttributes(cur.Type, toxicAttributes[cur.Type], u.Attributes)
		if err != nil {
			return cur, fmt.Errorf("toxiproxy update toxic %q on %q: %w", name, proxy, err)
		}
	}
	var got Toxic
	path := "/proxies/" + url.PathEscape(proxy) + "/toxics/" + url.PathEscape(name)
	if err := c.do(ctx, http.MethodPost, path, u, &got); err != nil {
		return cur, fmt.Errorf("toxiproxy update toxic %q on %q: %w", name, proxy, err)
	}
	c.rec.Record(faults.Event{Fault: cur.Type, Action: faults.Inject, Target: proxy, Name: name})
	return got, nil
}

func (c *Client) toxic(ctx context.Context, proxy, name string) (Toxic, error) {
	var t Toxic
	err := c.do(ctx, http.MethodGet, "/proxies/"+url.PathEscape(proxy)+"/toxics/"+url.PathEscape(name), nil, &t)
	return t, err
}

// RemoveToxic removes a toxic and reports a remove event.
func (c *Client) RemoveToxic(ctx context.Context, proxy, name string) error {
	if proxy == "" || name == "" {
		return errors.New("toxiproxy remove toxic: missing proxy or toxic name")
	}
	key := toxicKey{proxy, name}
	c.state.mu.Lock()
	typ, ok := c.state.added[key]
	c.state.mu.Unlock()
	if !ok {
		// Someone else added it; learn its type for the event.
		t, err := c.toxic(ctx, proxy, name)
		if err != nil {
			return fmt.Errorf("toxiproxy remove toxic %q on %q: %w", name, proxy, err)
		}
		typ = t.Type
	}
	path := "/proxies/" + url.PathEscape(proxy) + "/toxics/" + url.PathEscape(name)
	if err := c.do(ctx, http.MethodDelete, path, nil, nil); err != nil {
		return fmt.Errorf("toxiproxy remove toxic %q on %q: %w", name, proxy, err)
	}
	c.state.mu.Lock()
	delete(c.state.added, key)
	c.state.mu.Unlock()
	c.rec.Record(faults.Event{Fault: typ, Action: faults.Remove, Target: proxy, Name: name})
	return nil
}

// Disable stops a proxy: it closes its connections and refuses new ones,
// which is a partition between clients and that server.
func (c *Client) Disable(ctx context.Context, proxy string) error {
	if err := c.setEnabled(ctx, proxy, false); err != nil {
		return fmt.Errorf("toxiproxy disable %q: %w", proxy, err)
	}
	c.state.mu.Lock()
	c.state.disabled[proxy] = true
	c.state.mu.Unlock()
	c.rec.Record(faults.Event{Fault: PartitionFault, Action: faults.Inject, Target: proxy})
	return nil
}

// Enable starts a proxy again, ending a partition.
func (c *Client) Enable(ctx context.Context, proxy string) error {
	if err := c.setEnabled(ctx, proxy, true); err != nil {
		return fmt.Errorf("toxiproxy enable %q: %w", proxy, err)
	}
	c.state.mu.Lock()
	delete(c.state.disabled, proxy)
	c.state.mu.Unlock()
	c.rec.Record(faults.Event{Fault: PartitionFault, Action: faults.Remove, Target: proxy})
	return nil
}

func (c *Client) setEnabled(ctx context.Context, proxy string, on bool) error {
	if proxy == "" {
		return errors.New("missing proxy name")
	}
	return c.do(ctx, http.MethodPost, "/proxies/"+url.PathEscape(proxy), map[string]bool{"enabled": on}, nil)
}

// Cleanup removes every toxic this client added and enables every proxy it
// disabled. A toxic already gone counts as removed, so calling it twice is
// safe. It runs even when ctx is already cancelled (a run that aborts must
// still clean up), each call still bounded by the client's timeout.
func (c *Client) Cleanup(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	c.state.mu.Lock()
	keys := make([]toxicKey, 0, len(c.state.added))
	for k := range c.state.added {
		keys = append(keys, k)
	}
	proxies := make([]string, 0, len(c.state.disabled))
	for p := range c.state.disabled {
		proxies = append(proxies, p)
	}
	c.state.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].proxy+"/"+keys[i].name < keys[j].proxy+"/"+keys[j].name
	})
	sort.Strings(proxies)

	var errs []error
	for _, k := range keys {
		err := c.RemoveToxic(ctx, k.proxy, k.name)
		if errors.Is(err, ErrNotFound) {
			c.state.mu.Lock()
			delete(c.state.added, k)
			c.state.mu.Unlock()
			err = nil
		}
		errs = append(errs, err)
	}
	for _, p := range proxies {
		errs = append(errs, c.Enable(ctx, p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("toxiproxy cleanup: %w", err)
	}
	return nil
}

// Added returns "proxy/name" of every toxic this client added and has not
// removed yet, sorted; for tests and for reporting a cleanup that failed.
func (c *Client) Added() []string {
	c.state.mu.Lock()
	defer c.state.mu.Unlock()
	out := make([]string, 0, len(c.state.added))
	for k := range c.state.added {
		out = append(out, k.proxy+"/"+k.name)
	}
	sort.Strings(out)
	return out
}

// apiError is Toxiproxy's error body.
type apiError struct {
	Message string `json:"error"`
	Status  int    `json:"status"`
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// Toxiproxy refuses state-changing requests from browsers; a plain
	// User-Agent keeps its CSRF check out of our way.
	req.Header.Set("User-Agent", "firedrill-toxiproxy")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &ae) == nil && ae.Message != "" {
			msg = ae.Message
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s %s: %s: %w", method, path, msg, ErrNotFound)
		}
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, msg)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}
