package reports

import (
	"errors"
	"fmt"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// NewHistogram encodes h so that it can be stored in a result.
func NewHistogram(unit string, h *hdrhistogram.Histogram) (Histogram, error) {
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return Histogram{}, fmt.Errorf("encode histogram: %w", err)
	}
	return Histogram{Unit: unit, Encoded: string(b)}, nil
}

// Decode returns the HDR histogram h holds.
func (h Histogram) Decode() (*hdrhistogram.Histogram, error) {
	if h.Encoded == "" {
		return nil, errors.New("decode histogram: empty")
	}
	d, err := hdrhistogram.Decode([]byte(h.Encoded))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return d, nil
}

// Percentiles returns the values at the given percentiles (0-100) in h's
// unit. An empty histogram gives zeros.
func (h Histogram) Percentiles(ps ...float64) ([]float64, error) {
	d, err := h.Decode()
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = float64(d.ValueAtPercentile(p))
	}
	return out, nil
}

// Percentile returns the value at percentile p (0-100) in h's unit.
func (h Histogram) Percentile(p float64) (float64, error) {
	v, err := h.Percentiles(p)
	if err != nil {
		return 0, err
	}
	return v[0], nil
}

// Count returns how many values h recorded.
func (h Histogram) Count() (int64, error) {
	d, err := h.Decode()
	if err != nil {
		return 0, err
	}
	return d.TotalCount(), nil
}

// MergeHistograms adds histograms recorded by several generators or runs
// into one, exactly: every recorded value is kept, so percentiles of the
// merge equal those of all samples together (to the histograms' precision).
// All histograms must share a unit. The merge covers the widest range and
// the finest precision of its inputs, so no value is dropped.
func MergeHistograms(hs ...Histogram) (Histogram, error) {
	if len(hs) == 0 {
		return Histogram{}, errors.New("merge histograms: none given")
	}
	decoded := make([]*hdrhistogram.Histogram, len(hs))
	lo, hi, digits := int64(0), int64(0), int64(0)
	for i, h := range hs {
		if h.Unit != hs[0].Unit {
			return Histogram{}, fmt.Errorf("merge histograms: units differ (%q and %q)", hs[0].Unit, h.Unit)
		}
		d, err := h.Decode()
		if err != nil {
			return Histogram{}, fmt.Errorf("merge histograms: histogram %d: %w", i, err)
		}
		decoded[i] = d
		if i == 0 || d.LowestTrackableValue() < lo {
			lo = d.LowestTrackableValue()
		}
		hi = max(hi, d.HighestTrackableValue())
		digits = max(digits, d.SignificantFigures())
	}
	if lo < 1 {
		lo = 1
	}
	m := hdrhistogram.New(lo, hi, int(digits))
	for i, d := range decoded {
		if dropped := m.Merge(d); dropped != 0 {
			return Histogram{}, fmt.Errorf("merge histograms: histogram %d: %d values out of range", i, dropped)
		}
	}
	return NewHistogram(hs[0].Unit, m)
}

// MergeHistogramMaps merges the named histograms of several results (such as
// Result.Histograms of each generator) name by name. A name missing from
// some inputs merges what the others have.
func MergeHistogramMaps(ms ...map[string]Histogram) (map[string]Histogram, error) {
	byName := map[string][]Histogram{}
	for _, m := range ms {
		for name, h := range m {
			byName[name] = append(byName[name], h)
		}
	}
	out := make(map[string]Histogram, len(byName))
	for name, hs := range byName {
		h, err := MergeHistograms(hs...)
		if err != nil {
			return nil, fmt.Errorf("histogram %q: %w", name, err)
		}
		out[name] = h
	}
	return out, nil
}
