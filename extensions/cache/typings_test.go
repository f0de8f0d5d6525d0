package cache

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic"
)

// index.d.ts documents the protections by hand; it must say what the
// registry says: the same option keys, each with its default.
func TestTypingsMatchTheProtectionRegistry(t *testing.T) {
	b, err := os.ReadFile("index.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := strings.Index(src, "export interface Protections {")
	end := strings.Index(src[start:], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("no `export interface Protections` block in index.d.ts")
	}
	block := src[start : start+end]
	entry := regexp.MustCompile(`/\*\*(.*?)\*/\s*\n\s*(\w+)\?:`)
	def := regexp.MustCompile(`\(default ("?[^")]*"?)\)`)
	typed := map[string]string{}
	for _, m := range entry.FindAllStringSubmatch(block, -1) {
		d := def.FindStringSubmatch(m[1])
		if d == nil {
			t.Errorf("index.d.ts: protections.%s does not say its default as (default ...)", m[2])
			continue
		}
		typed[m[2]] = strings.Trim(d[1], `"`)
	}
	registered := map[string]string{}
	for _, s := range traffic.Registered() {
		for _, o := range s.Options() {
			registered[o.Key] = formatDefault(o.Default)
		}
	}
	for k, v := range registered {
		got, ok := typed[k]
		switch {
		case !ok:
			t.Errorf("index.d.ts lacks protections.%s (default %s)", k, v)
		case got != v:
			t.Errorf("index.d.ts: protections.%s default %s, the registry's is %s", k, got, v)
		}
	}
	for k := range typed {
		if _, ok := registered[k]; !ok {
			t.Errorf("index.d.ts documents protections.%s, which no registered protection has", k)
		}
	}
	if len(registered) < 20 || !slices.Contains(traffic.Registered()[0].Ops, traffic.KindFetch) {
		t.Errorf("only %d protection options registered", len(registered))
	}
}

func formatDefault(v any) string {
	switch x := v.(type) {
	case time.Duration:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	panic("unexpected default type")
}

// index.d.ts types the replay's summary by hand; it must name every key
// the replay returns (the protections' counters included), and no other.
func TestTypingsMatchTheReplaySummary(t *testing.T) {
	b, err := os.ReadFile("index.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	start := strings.Index(src, "export interface ReplaySummary {")
	if start < 0 {
		t.Fatal("no `export interface ReplaySummary` block in index.d.ts")
	}
	end := strings.Index(src[start:], "\n}\n")
	if end < 0 {
		t.Fatal("ReplaySummary block does not end")
	}
	typed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  (\w+)\??:`).FindAllStringSubmatch(src[start:start+end], -1) {
		typed[m[1]] = true
	}
	s := traffic.Summary{Protections: map[string]int64{}}
	for _, sp := range traffic.Registered() {
		for _, c := range sp.Counters {
			s.Protections[c.Summary] = 0
		}
	}
	got := summaryMap(s)
	for k := range got {
		if !typed[k] {
			t.Errorf("index.d.ts: ReplaySummary lacks %s", k)
		}
	}
	for k := range typed {
		if _, ok := got[k]; !ok {
			t.Errorf("index.d.ts: ReplaySummary has %s, which the replay does not return", k)
		}
	}
	for _, k := range []string{"requests", "tierCalls", "requestP50Ms", "requestP99Ms", "tierFlagOffs", "tierSkipped"} {
		if _, ok := got[k]; !ok {
			t.Errorf("the replay's summary lacks %s", k)
		}
	}
}
