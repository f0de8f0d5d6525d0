package reports

import (
	"math"
	"testing"
)

func TestMannWhitneyKnownValues(t *testing.T) {
	for _, tc := range []struct {
		name    string
		x, y    []float64
		u, p    float64
		minP    float64
		epsilon float64
	}{
		// R: wilcox.test(x, y) on the depression example of ?wilcox.test
		// gives W = 35 and (one-sided) p = 0.1272, so two-sided 0.2544.
		{
			name: "R depression example",
			x:    []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46},
			y:    []float64{1.15, 0.88, 0.90, 0.74, 1.21},
			u:    35, p: 0.2544, minP: 2.0 / 3003, epsilon: 0.0001,
		},
		// Complete separation of 5 and 5: p = 2/C(10,5) = 2/252.
		{
			name: "separated 5v5",
			x:    []float64{1, 2, 3, 4, 5}, y: []float64{6, 7, 8, 9, 10},
			u: 0, p: 2.0 / 252, minP: 2.0 / 252, epsilon: 1e-12,
		},
		// Three repeats a side can never reach 0.05: p is at least 2/20.
		{
			name: "separated 3v3",
			x:    []float64{10, 11, 12}, y: []float64{1, 2, 3},
			u: 9, p: 0.1, minP: 0.1, epsilon: 1e-12,
		},
		// Identical samples: no evidence at all.
		{
			name: "all tied",
			x:    []float64{5, 5, 5}, y: []float64{5, 5, 5},
			u: 4.5, p: 1, minP: 0.1, epsilon: 1e-12,
		},
		// With ties the normal approximation is used, with tie and continuity
		// correction (as R's wilcox.test(exact=FALSE, correct=TRUE)). By hand:
		// R1 = 26, U = 5, tie term 42, sd = sqrt(3.5*(14-42/156)) = 6.93237,
		// z = (16-0.5)/sd = 2.23589, p = 2*(1-Phi(z)) = 0.02536.
		{
			name: "ties, normal approximation",
			x:    []float64{1, 2, 2, 3, 4, 5}, y: []float64{3, 4, 5, 5, 6, 7, 8},
			u: 5, p: 0.02536, minP: 2.0 / 1716, epsilon: 0.00002,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := MannWhitneyU(tc.x, tc.y)
			if got.U != tc.u {
				t.Errorf("U = %v, want %v", got.U, tc.u)
			}
			if math.Abs(got.P-tc.p) > tc.epsilon {
				t.Errorf("p = %.6f, want %.6f", got.P, tc.p)
			}
			if math.Abs(got.MinP-tc.minP) > 1e-9 {
				t.Errorf("min p = %.6f, want %.6f", got.MinP, tc.minP)
			}
			// The test is symmetric in its samples.
			if back := MannWhitneyU(tc.y, tc.x); math.Abs(back.P-got.P) > 1e-12 {
				t.Errorf("p(y, x) = %v, p(x, y) = %v", back.P, got.P)
			}
		})
	}
}

func TestUDistributionSumsToOne(t *testing.T) {
	for _, n := range [][2]int{{1, 1}, {3, 4}, {10, 10}, {20, 25}} {
		var sum float64
		for _, p := range uDistribution(n[0], n[1]) {
			sum += p
		}
		if math.Abs(sum-1) > 1e-9 {
			t.Errorf("%v: sum = %v", n, sum)
		}
	}
}
