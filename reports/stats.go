package reports

import (
	"math"
	"slices"
)

// MannWhitney is the outcome of a Mann-Whitney U test of samples x and y.
type MannWhitney struct {
	U float64 // U statistic of the first sample
	P float64 // two-sided p-value
	// PLess and PGreater are the one-sided p-values for the alternatives
	// "x tends to be less than y" and "x tends to be greater than y" (R's
	// wilcox.test alternative="less" and "greater").
	PLess, PGreater float64
	// MinP and MinPOneSided are the smallest two-sided and one-sided
	// p-values these sample sizes can give at all. When one is above alpha
	// no difference can ever be significant: more repeats are needed, not a
	// better release.
	MinP, MinPOneSided float64
}

// maxExact bounds the sample sizes for which the exact distribution of U is
// computed; beyond it the normal approximation is good and cheaper.
const maxExact = 50

// MannWhitneyU tests whether x and y come from the same distribution, as
// benchstat does: the exact distribution of U for small samples without
// ties, otherwise the normal approximation with tie and continuity
// correction. It needs at least one value on each side.
func MannWhitneyU(x, y []float64) MannWhitney {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return MannWhitney{U: math.NaN(), P: math.NaN(), PLess: math.NaN(), PGreater: math.NaN(), MinP: 1, MinPOneSided: 1}
	}
	// Rank the pooled samples, averaging the ranks of ties.
	type obs struct {
		v     float64
		first bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range x {
		all = append(all, obs{v, true})
	}
	for _, v := range y {
		all = append(all, obs{v, false})
	}
	slices.SortStableFunc(all, func(a, b obs) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	var r1, tieSum float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1..j
		for k := i; k < j; k++ {
			if all[k].first {
				r1 += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties = true
			tieSum += t*t*t - t
		}
		i = j
	}
	fn1, fn2 := float64(n1), float64(n2)
	u := r1 - fn1*(fn1+1)/2
	res := MannWhitney{U: u, MinP: math.Min(1, 2/binomial(n1+n2, n1)), MinPOneSided: 1 / binomial(n1+n2, n1)}
	if !ties && n1+n2 <= maxExact {
		dist := uDistribution(n1, n2)
		// A small U of x means x ranks low: P(U <= u) is the p of "x less".
		for k, pk := range dist {
			if k <= int(u) {
				res.PLess += pk
			}
			if k >= int(u) {
				res.PGreater += pk
			}
		}
		res.PLess, res.PGreater = math.Min(1, res.PLess), math.Min(1, res.PGreater)
		res.P = math.Min(1, 2*math.Min(res.PLess, res.PGreater))
		return res
	}
	n := fn1 + fn2
	mean := fn1 * fn2 / 2
	sd := math.Sqrt(fn1 * fn2 / 12 * ((n + 1) - tieSum/(n*(n-1))))
	if sd == 0 { // every value equal: no evidence of a difference
		res.P, res.PLess, res.PGreater = 1, 1, 1
		return res
	}
	// Upper tail of the standard normal, with continuity correction.
	upper := func(z float64) float64 { return math.Min(1, 0.5*math.Erfc(z/math.Sqrt2)) }
	res.PLess = upper((mean - u - 0.5) / sd)
	res.PGreater = upper((u - mean - 0.5) / sd)
	// Twice the smaller tail: the same as the two-sided test with continuity
	// correction, capped at 1 when |u - mean| < 0.5.
	res.P = math.Min(1, 2*math.Min(res.PLess, res.PGreater))
	return res
}

// uDistribution returns P(U = k) for k = 0..n1*n2 under the null hypothesis,
// counting the arrangements of n1+n2 ranks with the recurrence
// f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k).
func uDistribution(n1, n2 int) []float64 {
	size := n1*n2 + 1
	// f[n][k] for the current m.
	prev := make([][]float64, n2+1)
	for n := range prev {
		prev[n] = make([]float64, size)
		prev[n][0] = 1 // m = 0: one arrangement, U = 0
	}
	for m := 1; m <= n1; m++ {
		cur := make([][]float64, n2+1)
		for n := 0; n <= n2; n++ {
			cur[n] = make([]float64, size)
			for k := 0; k < size; k++ {
				var v float64
				if k-n >= 0 {
					v += prev[n][k-n]
				}
				if n > 0 {
					v += cur[n-1][k]
				}
				cur[n][k] = v
			}
		}
		prev = cur
	}
	total := binomial(n1+n2, n1)
	out := prev[n2]
	for k := range out {
		out[k] /= total
	}
	return out
}

func binomial(n, k int) float64 {
	r := 1.0
	for i := 1; i <= k; i++ {
		r = r * float64(n-k+i) / float64(i)
	}
	return r
}

// median of xs; NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
