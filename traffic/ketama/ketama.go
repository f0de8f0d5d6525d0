// Package ketama places keys on memcached servers with the ketama consistent
// hash as libmemcached computes it (MEMCACHED_BEHAVIOR_KETAMA with MD5), so a
// drill spreads keys over servers the way common production clients do and a
// server added or lost moves only about 1/N of the keys.
package ketama

import (
	"crypto/md5"
	"errors"
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
)

// pointsPerServer is libmemcached's MEMCACHED_POINTS_PER_SERVER_KETAMA: 40
// MD5 digests per server, 4 points taken from each.
const pointsPerServer = 160

// DefaultPort is memcached's port; libmemcached leaves it out of the point
// names, so servers on 11211 hash as "host-i" and others as "host:port-i".
const DefaultPort = 11211

type point struct {
	value uint32
	index int
}

// Ring is an immutable ketama continuum. It is safe for concurrent use.
type Ring struct {
	points  []point
	servers []string
}

// New builds the continuum for servers given as "host:port", all of equal
// weight, in the order given (the order matters only for ties).
func New(servers []string) (*Ring, error) { return NewWeighted(servers, nil) }

// NewWeighted builds libmemcached's weighted ketama continuum
// (MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED); nil weights mean all equal, which
// gives every server 160 points as last.fm's libketama does. The float32
// arithmetic copies libmemcached's, so point counts match it exactly.
func NewWeighted(servers []string, weights []uint32) (*Ring, error) {
	if len(servers) == 0 {
		return nil, errors.New("ketama: no servers")
	}
	if weights != nil && len(weights) != len(servers) {
		return nil, fmt.Errorf("ketama: %d weights for %d servers", len(weights), len(servers))
	}
	var total uint64
	for i := range servers {
		total += uint64(weightOf(weights, i))
	}
	r := &Ring{servers: append([]string(nil), servers...)}
	r.points = make([]point, 0, pointsPerServer*len(servers))
	for i, s := range servers {
		pct := float32(weightOf(weights, i)) / float32(total)
		perServer := int(math.Floor(float64(float32(float64(pct*pointsPerServer/4*float32(len(servers)))+0.0000000001)))) * 4
		host, portStr, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("ketama: server %q: %w", s, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("ketama: server %q: %w", s, err)
		}
		for j := 0; j < perServer/4; j++ {
			var name string
			if port == DefaultPort {
				name = host + "-" + strconv.Itoa(j)
			} else {
				name = host + ":" + portStr + "-" + strconv.Itoa(j)
			}
			d := md5.Sum([]byte(name))
			for x := 0; x < 4; x++ {
				v := uint32(d[3+x*4])<<24 | uint32(d[2+x*4])<<16 | uint32(d[1+x*4])<<8 | uint32(d[x*4])
				r.points = append(r.points, point{value: v, index: i})
			}
		}
	}
	sort.SliceStable(r.points, func(a, b int) bool { return r.points[a].value < r.points[b].value })
	return r, nil
}

// Hash is libmemcached's MD5 key hash in ketama mode: the first four digest
// bytes read little-endian.
func Hash(key string) uint32 {
	d := md5.Sum([]byte(key))
	return uint32(d[3])<<24 | uint32(d[2])<<16 | uint32(d[1])<<8 | uint32(d[0])
}

// Servers returns the servers the ring was built from.
func (r *Ring) Servers() []string { return r.servers }

// Index returns the index (into the servers given to New) of key's server.
func (r *Ring) Index(key string) int { return r.IndexOfHash(Hash(key)) }

// IndexOfHash returns the server index for a precomputed key hash: the first
// point at or after h, wrapping around the continuum.
func (r *Ring) IndexOfHash(h uint32) int {
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].value >= h })
	if i == len(r.points) {
		i = 0
	}
	return r.points[i].index
}

// Server returns the address of key's server.
func (r *Ring) Server(key string) string { return r.servers[r.Index(key)] }

func weightOf(w []uint32, i int) uint32 {
	if w == nil || w[i] == 0 {
		return 1
	}
	return w[i]
}
