// Package zipf samples scrambled Zipf-distributed ids over keyspaces of
// billions of items in O(1) memory, as YCSB's ScrambledZipfianGenerator does
// (Gray et al., SIGMOD 1994): a popularity rank is drawn from Zipf(theta)
// and then scrambled with FNV-1a so hot ids are not adjacent (and so do not
// all land on one memcached server or one database page). Ranks are drawn
// by rejection-inversion, which is exact where Gray's formula approximates.
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
	n            uint64
	theta, zetan float64
	hX1, hN, sq  float64
}

// New returns a sampler over n items with exponent theta in (0, 1) (the
// range YCSB and the drills use; rejection-inversion itself also works
// above 1, but Zeta's tail formula assumes theta < 1).
func New(n uint64, theta float64) (*Sampler, error) {
	if n == 0 {
		return nil, errors.New("zipf: n must be > 0")
	}
	if !(theta > 0 && theta < 1) {
		return nil, fmt.Errorf("zipf: theta %v must be in (0, 1)", theta)
	}
	s := &Sampler{n: n, theta: theta}
	s.zetan = Zeta(n, theta)
	s.hX1 = s.hIntegral(1.5) - 1
	s.hN = s.hIntegral(float64(n) + 0.5)
	s.sq = 2 - s.hInv(s.hIntegral(2.5)-s.h(2))
	return s, nil
}

// N returns the number of items.
func (s *Sampler) N() uint64 { return s.n }

// TopShare is the share of the draws over n ranks that fall on the top
// most popular ones (Rank below top).
func TopShare(top, n uint64, theta float64) float64 {
	return Zeta(min(top, n), theta) / Zeta(n, theta)
}

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

// Rank draws a popularity rank: 0 is the most popular item. It uses
// rejection-inversion (Hörmann and Derflinger, 1996, as in Apache Commons'
// RejectionInversionZipfSampler): exact Zipf probabilities, O(1) memory and
// O(1) expected time, unlike Gray's closed form, which only approximates
// ranks beyond the first two.
func (s *Sampler) Rank(r *rand.Rand) uint64 {
	for {
		u := s.hN + r.Float64()*(s.hX1-s.hN)
		x := s.hInv(u)
		k := math.Floor(x + 0.5)
		if k < 1 {
			k = 1
		} else if k > float64(s.n) {
			k = float64(s.n)
		}
		if k-x <= s.sq || u >= s.hIntegral(k+0.5)-s.h(k) {
			return uint64(k) - 1
		}
	}
}

func (s *Sampler) h(x float64) float64 { return math.Exp(-s.theta * math.Log(x)) }

func (s *Sampler) hIntegral(x float64) float64 {
	lx := math.Log(x)
	return helper2((1-s.theta)*lx) * lx
}

func (s *Sampler) hInv(x float64) float64 {
	t := x * (1 - s.theta)
	if t < -1 {
		t = -1 // numerical safety, as in Commons
	}
	return math.Exp(helper1(t) * x)
}

// helper1 is log1p(x)/x, stable near 0.
func helper1(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Log1p(x) / x
	}
	return 1 - x*(0.5-x*(1.0/3-0.25*x))
}

// helper2 is expm1(x)/x, stable near 0.
func helper2(x float64) float64 {
	if math.Abs(x) > 1e-8 {
		return math.Expm1(x) / x
	}
	return 1 + x*0.5*(1+x*(1.0/3)*(1+0.25*x))
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
