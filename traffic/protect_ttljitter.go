package traffic

import (
	"fmt"
	"time"
)

// ttlJitter shortens each entry's TTL by a uniform random fraction in
// [0, ttlJitter), so entries filled together do not expire together.
// IdentityCache's store-wide TTL has none.
type ttlJitter struct {
	Fraction float64 `opt:"ttlJitter"`
}

func init() {
	Register(Spec{
		Name: "ttlJitter", Doc: "shorten each TTL by a random fraction up to this, so entries filled together expire apart",
		Ops: []string{KindFetch, KindMulti},
		New: func() Protection { return &ttlJitter{} },
	})
}

func (j *ttlJitter) Enabled() bool { return j.Fraction > 0 }

func (j *ttlJitter) Validate() error {
	if j.Fraction < 0 || j.Fraction >= 1 {
		return fmt.Errorf("ttlJitter: %v must be in [0, 1) (0 is off)", j.Fraction)
	}
	return nil
}

// ttl shortens the logical TTL and the stored one by the same amount, so
// a grace period added by another protection is kept.
func (j *ttlJitter) ttl(w *worker, logical, stored time.Duration) (time.Duration, time.Duration) {
	cut := time.Duration(float64(logical) * j.Fraction * w.rng.Float64())
	return logical - cut, stored - cut
}

var (
	_ Protection = (*ttlJitter)(nil)
	_ ttlHook    = (*ttlJitter)(nil)
)
