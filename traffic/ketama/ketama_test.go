package ketama

import (
	"fmt"
	"testing"
)

// Vectors from libmemcached's test/fixtures/ketama.hpp (ketama_test_cases,
// the "standard ketama set" of its memcached_ketama_compat test): key, its
// MD5 hash, the continuum point it lands on, and that point's server on the
// weighted 8-server pool below.
var libmemcachedVectors = []struct {
	key         string
	hash, point uint32
	server      string
}{
	{"SVa_]_V41)", 443691461, 445379617, "10.0.1.7"},
	{"*/Z;?V(.\\8", 1422915503, 1428303028, "10.0.1.1"},
	{"30C1*Z*S/_", 1473165754, 1480075959, "10.0.1.2"},
	{"ERR:EC58G>", 2148406511, 2168579133, "10.0.1.7"},
	{"1I=cTMNTKF", 2882686667, 2885206587, "10.0.1.5"},
	{"]VG<`I*Z8)", 1103544263, 1104827657, "10.0.1.5"},
	{"UUTC`-V159", 3716288206, 3727224240, "10.0.1.5"},
	{"@7RU6C6T+Z", 3862737685, 3871917949, "10.0.1.5"},
	{"/XLN0@+36;", 1623269830, 1627683651, "10.0.1.1"},
	{"4(`X;\\V.^c", 373546328, 383925769, "10.0.1.1"},
	{"726bW=9*a4", 4213440020, 4213950705, "10.0.1.7"},
	{"\\`)<B)UE,c", 951096736, 955226069, "10.0.1.1"},
	{"P1[Ma3=K1/", 1989324036, 1994028240, "10.0.1.8"},
	{"C89I.-V?cT", 1604239957, 1606398093, "10.0.1.8"},
	{"D[HE+cFXDK", 2117036136, 2117124014, "10.0.1.3"},
	{"P1L?NAB[)K", 2129972569, 2132542634, "10.0.1.1"},
	{"cDT0)Z5P6,", 176485284, 178675413, "10.0.1.5"},
	{"@JW`+[WAO8", 2720940826, 2743975456, "10.0.1.5"},
	{"\\39DKW^)N_", 3548879868, 3550704865, "10.0.1.3"},
	{"EM75N0+[X1", 1558531507, 1559308507, "10.0.1.4"},
	{"6,cEI`F_P>", 3972869246, 3974773167, "10.0.1.6"},
	{"(,>E`)FT\\4", 580747448, 581063326, "10.0.1.2"},
	{"8*6a;Sc*X+", 4223431086, 4230156966, "10.0.1.2"},
	{"Nb-X^]M)I:", 330865696, 331009896, "10.0.1.6"},
	{"[1ZXONX2]a", 4108881567, 4109865744, "10.0.1.4"},
	{"VD6D0]ba_\\", 3842502950, 3842588691, "10.0.1.1"},
}

func libmemcachedPool(t *testing.T) *Ring {
	t.Helper()
	var servers []string
	for i := 1; i <= 8; i++ {
		servers = append(servers, fmt.Sprintf("10.0.1.%d:11211", i))
	}
	r, err := NewWeighted(servers, []uint32{600, 300, 200, 350, 1000, 800, 950, 100})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHashVectors(t *testing.T) {
	for _, v := range libmemcachedVectors {
		if got := Hash(v.key); got != v.hash {
			t.Errorf("Hash(%q) = %d, want %d", v.key, got, v.hash)
		}
	}
	// libmemcached: "VDEAAAAA hashes to fffcd1b5, after the last continuum point"
	if got := Hash("VDEAAAAA"); got != 0xfffcd1b5 {
		t.Errorf("Hash(VDEAAAAA) = %x, want fffcd1b5", got)
	}
}

func TestLibmemcachedWeightedVectors(t *testing.T) {
	r := libmemcachedPool(t)
	for _, v := range libmemcachedVectors {
		i := sortSearch(r, v.hash)
		if r.points[i].value != v.point {
			t.Errorf("point for %q = %d, want %d", v.key, r.points[i].value, v.point)
		}
		if got := r.Server(v.key); got != v.server+":11211" {
			t.Errorf("Server(%q) = %s, want %s", v.key, got, v.server)
		}
	}
	// wraparound: past the last point goes to the first point's server
	if got, want := r.Index("VDEAAAAA"), r.points[0].index; got != want {
		t.Errorf("wraparound index = %d, want %d", got, want)
	}
}

func TestEqualWeightsSpreadAndStability(t *testing.T) {
	servers := []string{"127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003", "127.0.0.1:21004"}
	r, err := New(servers)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.points) != 160*len(servers) {
		t.Fatalf("points = %d, want %d", len(r.points), 160*len(servers))
	}
	const n = 40000
	counts := make([]int, len(servers))
	before := make([]int, n)
	for i := 0; i < n; i++ {
		before[i] = r.Index(fmt.Sprintf("IDC:8:blob:Record:abc:%d", i))
		counts[before[i]]++
	}
	for i, c := range counts {
		if c < n/len(servers)/2 || c > n/len(servers)*3/2 {
			t.Errorf("server %d got %d of %d keys: spread too uneven", i, c, n)
		}
	}
	// removing one server moves only that server's keys
	r3, _ := New(servers[:3])
	moved := 0
	for i := 0; i < n; i++ {
		if before[i] != 3 && r3.Index(fmt.Sprintf("IDC:8:blob:Record:abc:%d", i)) != before[i] {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d keys of surviving servers moved", moved)
	}
}

func TestErrors(t *testing.T) {
	if _, err := New(nil); err == nil {
		t.Error("no servers: want error")
	}
	if _, err := New([]string{"nohostport"}); err == nil {
		t.Error("bad address: want error")
	}
}

func sortSearch(r *Ring, h uint32) int {
	for i, p := range r.points {
		if p.value >= h {
			return i
		}
	}
	return 0
}
