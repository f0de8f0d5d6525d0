package main

import (
	"strings"
	"testing"
	"time"

	"github.com/firedrill-dev/firedrill/traffic/format"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestReleasesDefaultTheirProtections(t *testing.T) {
	base := map[string]string{"DB_DSN": "u:p@tcp(db:3306)/x", "MEMCACHED": "a:1, b:2"}
	v1, err := loadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Release != "v1" || v1.Format != format.Legacy || v1.CallTimeout != 100*time.Millisecond || v1.Breaker != 5 || !v1.Coalesce || v1.Budget != time.Second || !v1.OneRead || !v1.WarmPool {
		t.Errorf("v1 = %s", v1)
	}
	if len(v1.Servers) != 2 || v1.Servers[1] != "b:2" || v1.Calls != 15 {
		t.Errorf("v1 servers %v, calls %d", v1.Servers, v1.Calls)
	}
	if len(v1.Tier) != 0 || v1.TierCalls != 15 || v1.TierConnectTimeout != 50*time.Millisecond || v1.TierBreaker != 5 || !v1.TierFlag {
		t.Errorf("v1 tier = %s", v1)
	}
	base["APP_RELEASE"] = "v2"
	v2, err := loadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Format != format.Current || v2.CallTimeout != 2*time.Second || v2.Breaker != 0 || v2.Coalesce || v2.Budget != 0 || v2.DBTimeout != 0 || v2.OneRead || v2.WarmPool {
		t.Errorf("v2 = %s", v2)
	}
	if v2.TierTimeout != 2*time.Second || v2.TierConnectTimeout != 2*time.Second || v2.TierBreaker != 0 || v2.TierFlag {
		t.Errorf("v2 tier = %s", v2)
	}
	base["CACHE_BREAKER"] = "3"
	base["CACHE_TIMEOUT"] = "250ms"
	over, err := loadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if over.Breaker != 3 || over.CallTimeout != 250*time.Millisecond {
		t.Errorf("settings over the release's defaults: %s", over)
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	_, err := loadConfig(env(map[string]string{"CACHE_TIMEOUT": "soon", "CACHE_FORMAT": "8.0", "WORKERS": "0"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"CACHE_TIMEOUT", "CACHE_FORMAT", "WORKERS", "MEMCACHED is empty", "DB_DSN is empty"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
