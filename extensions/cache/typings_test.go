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
