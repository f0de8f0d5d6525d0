// Package zipf samples scrambled Zipf-distributed ids over keyspaces of up to
// billions of items in O(1) memory, with the rejection-free method of Gray et
// al. ("Quickly generating billion-record synthetic databases", SIGMOD 1994)
// as YCSB's ScrambledZipfianGenerator uses it: a popularity rank is drawn from
// Zipf(theta) and then scrambled with FNV-1a so hot ids are not adjacent (and
// so do not all land on one memcached server or one database page).
package zipf

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// exactZetaLimit bounds the item count for which zeta is summed term by term;
// above it an Euler–Maclaurin tail keeps construction O(1).
const exactZetaLimit = 1 << 20

// Sampler draws ranks and ids. It holds no per-item state, so a
// 5,000,000,000-item keyspace costs the same memory as a 10-item one. It is
// immutable and safe for concurrent use; the caller supplies the *rand.Rand.
type Sampler struct {
	n                   uint64
	theta, alpha, zetan float64
	eta, halfPowTheta   float64
}

// New returns a sampler over n items with exponent theta in (0, 1).
func New(n uint64, theta float64) (*Sampler, error) {
	if n == 0 {
		return nil, errors.New("zipf: n must be > 0")
	}
	if !(theta > 0 && theta < 1) {
		return nil, fmt.Errorf("zipf: theta %v must be in (0, 1)", theta)
	}
	s := &Sampler{n: n, theta: theta, alpha: 1 / (1 - theta)}
	s.zetan = Zeta(n, theta)
	zeta2 := Zeta(2, theta)
	s.halfPowTheta = math.Pow(0.5, theta)
	s.eta = (1 - math.Pow(2/float64(n), 1-theta)) / (1 - zeta2/s.zetan)
	return s, nil
}

// N returns the number of items.
func (s *Sampler) N() uint64 { return s.n }

// Zeta returns the generalised harmonic number sum_{i=1..n} i^-theta, exactly
// for small n and by Euler–Maclaurin (error far below 1e-9 relative) above.
func Zeta(n uint64, theta float64) float64 {
	if n <= exactZetaLimit {
		sum := 0.0
		for i := uint64(1); i <= n; i++ {
			sum += math.Pow(float64(i), -theta)
		}
		return sum
	}
	const m = 1 << 14
	sum := 0.0
	for i := 1; i < m; i++ {
		sum += math.Pow(float64(i), -theta)
	}
	fm, fn := float64(m), float64(n)
	// integral m..n of x^-theta dx, plus trapezoid end terms and the first
	// Bernoulli correction.
	sum += (math.Pow(fn, 1-theta) - math.Pow(fm, 1-theta)) / (1 - theta)
	sum += (math.Pow(fm, -theta) + math.Pow(fn, -theta)) / 2
	sum += theta / 12 * (math.Pow(fm, -theta-1) - math.Pow(fn, -theta-1))
	return sum
}

// Rank draws a popularity rank: 0 is the most popular item.
func (s *Sampler) Rank(r *rand.Rand) uint64 {
	u := r.Float64()
	uz := u * s.zetan
	if uz < 1 {
		return 0
	}
	if uz < 1+s.halfPowTheta {
		return 1
	}
	k := uint64(float64(s.n) * math.Pow(s.eta*u-s.eta+1, s.alpha))
	if k >= s.n {
		k = s.n - 1
	}
	return k
}

// Next draws an id in [0, n): a rank scrambled over the keyspace.
func (s *Sampler) Next(r *rand.Rand) uint64 { return Scramble(s.Rank(r), s.n) }

// Scramble maps a rank to its id, as YCSB does (FNV-1a 64 of the rank, mod n).
// Distinct ranks may collide on one id; for n much larger than the hot set
// that is rare and matches YCSB's behaviour.
func Scramble(rank, n uint64) uint64 { return FNV64(rank) % n }

// FNV64 is FNV-1a 64 over the 8 little-endian bytes of v.
func FNV64(v uint64) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < 8; i++ {
		h ^= v & 0xff
		h *= prime
		v >>= 8
	}
	return h
}

// Prob returns the exact Zipf probability of rank (0-based), for tests and
// for sizing a hot set.
func (s *Sampler) Prob(rank uint64) float64 {
	return math.Pow(float64(rank+1), -s.theta) / s.zetan
}
