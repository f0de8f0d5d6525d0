package environments

import (
	"strings"
	"testing"
)

func TestEndpointsGoThroughToxiproxyByItsAlias(t *testing.T) {
	ends := Endpoints(2)
	got, err := ResolveEndpoints("{{mysql.dsn}}?timeout=1s|{{ memcached.servers }}|{{memcached.1}}", ends)
	if err != nil {
		t.Fatal(err)
	}
	want := "firedrill:firedrill@tcp(toxiproxy:23306)/firedrill?timeout=1s|toxiproxy:21000,toxiproxy:21001|toxiproxy:21001"
	if got != want {
		t.Errorf("resolved %q, want %q", got, want)
	}
	if strings.Contains(got, "127.0.0.1") {
		t.Error("an endpoint the service sees must not be the host's loopback")
	}
	for _, n := range EndpointNames(2) {
		if _, ok := ends[n]; !ok {
			t.Errorf("EndpointNames lists %s, which Endpoints lacks", n)
		}
	}
	if len(EndpointNames(2)) != len(ends) {
		t.Errorf("EndpointNames has %d names, Endpoints %d", len(EndpointNames(2)), len(ends))
	}
}

func TestAnUnknownEndpointIsNamed(t *testing.T) {
	_, err := ResolveEndpoints("{{memcached.2}}", Endpoints(2))
	if err == nil || !strings.Contains(err.Error(), "unknown endpoint {{memcached.2}}") || !strings.Contains(err.Error(), "{{memcached.1}}") {
		t.Errorf("err = %v: want the unknown name and the known ones", err)
	}
	if got, err := ResolveEndpoints("plain value", Endpoints(1)); err != nil || got != "plain value" {
		t.Errorf("a value without endpoints: %q, %v", got, err)
	}
}
