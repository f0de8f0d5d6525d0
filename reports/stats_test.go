package reports

import (
	"math"
	"testing"
)

func TestMannWhitneyKnownValues(t *testing.T) {
	for _, tc := range []struct {
		name          string
		x, y          []float64
		u, p          float64
		less, greater float64 // one-sided p-values
		minP, minP1   float64
		epsilon       float64
	}{
		// R: wilcox.test(x, y) on the depression example of ?wilcox.test
		// gives W = 35 and (one-sided) p = 0.1272, so two-sided 0.2544;
		// alternative="less" gives 0.8968 (both tails hold P(W = 35)).
		{
			name: "R depression example",
			x:    []float64{0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46},
			y:    []float64{1.15, 0.88, 0.90, 0.74, 1.21},
			u:    35, p: 0.2544, less: 0.8968, greater: 0.1272, minP: 2.0 / 3003, minP1: 1.0 / 3003, epsilon: 0.0001,
		},
		// Complete separation of 5 and 5: p = 2/C(10,5) = 2/252.
		{
			name: "separated 5v5",
			x:    []float64{1, 2, 3, 4, 5}, y: []float64{6, 7, 8, 9, 10},
			u: 0, p: 2.0 / 252, less: 1.0 / 252, greater: 1, minP: 2.0 / 252, minP1: 1.0 / 252, epsilon: 1e-12,
		},
		// Three repeats a side: two-sided p is at least 2/20, one-sided
		// 1/20 = 0.05, reached only by complete separation.
		{
			name: "separated 3v3",
			x:    []float64{10, 11, 12}, y: []float64{1, 2, 3},
			u: 9, p: 0.1, less: 1, greater: 0.05, minP: 0.1, minP1: 0.05, epsilon: 1e-12,
		},
		// Identical samples: no evidence at all.
		{
			name: "all tied",
			x:    []float64{5, 5, 5}, y: []float64{5, 5, 5},
			u: 4.5, p: 1, less: 1, greater: 1, minP: 0.1, minP1: 0.05, epsilon: 1e-12,
		},
		// With ties the normal approximation is used, with tie and continuity
		// correction (as R's wilcox.test(exact=FALSE, correct=TRUE)). By hand:
		// R1 = 26, U = 5, tie term 42, sd = sqrt(3.5*(14-42/156)) = 6.93237,
		// z = (16-0.5)/sd = 2.23589, p = 2*(1-Phi(z)) = 0.02536; one-sided
		// "less" is half of it, "greater" 1-Phi((5-21-0.5)/sd) = Phi(2.38014) = 0.99135.
		{
			name: "ties, normal approximation",
			x:    []float64{1, 2, 2, 3, 4, 5}, y: []float64{3, 4, 5, 5, 6, 7, 8},
			u: 5, p: 0.02536, less: 0.01268, greater: 0.99135, minP: 2.0 / 1716, minP1: 1.0 / 1716, epsilon: 0.00002,
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
			if math.Abs(got.PLess-tc.less) > tc.epsilon || math.Abs(got.PGreater-tc.greater) > tc.epsilon {
				t.Errorf("one-sided p less %.6f greater %.6f, want %.6f %.6f", got.PLess, got.PGreater, tc.less, tc.greater)
			}
			if math.Abs(got.MinP-tc.minP) > 1e-9 || math.Abs(got.MinPOneSided-tc.minP1) > 1e-9 {
				t.Errorf("min p = %.6f one-sided %.6f, want %.6f %.6f", got.MinP, got.MinPOneSided, tc.minP, tc.minP1)
			}
			// The test is symmetric in its samples.
			if back := MannWhitneyU(tc.y, tc.x); math.Abs(back.P-got.P) > 1e-12 ||
				math.Abs(back.PLess-got.PGreater) > 1e-12 || math.Abs(back.PGreater-got.PLess) > 1e-12 {
				t.Errorf("swapped samples: p %v less %v greater %v; p(x, y) %v less %v greater %v",
					back.P, back.PLess, back.PGreater, got.P, got.PLess, got.PGreater)
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
