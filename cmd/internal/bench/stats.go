package bench

import (
	"math/rand/v2"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to an hour, with three
// significant digits (HdrHistogram: every value within 0.1%).
const (
	histMin    = 1
	histMax    = int64(time.Hour / time.Microsecond)
	histDigits = 3
	// Per-second histograms need less precision (1%) and are many.
	secondDigits = 2
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

func newSecondHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, secondDigits)
}

// record adds d to h, clamped to its range.
func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = max(histMin, min(us, histMax))
	_ = h.RecordValue(us) // in range by construction
}

// Percentiles summarise a latency distribution, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// percentiles reads h. An empty histogram gives zeros with Count 0.
func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
}

// Second is one second of a phase: what happened in it (sent, accepted,
// results: by when it happened) and the latency of the commands that were
// due in it (by when they were due, so a stall shows where it began).
type Second struct {
	T        int     `json:"t"` // seconds since the phase started
	Sent     int     `json:"sent"`
	Accepted int     `json:"accepted"`
	Results  int     `json:"results"`
	Count    int64   `json:"latency_count"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

// point is one sampled command for the scatter plot.
type point struct {
	T       float64 // seconds since the phase started, when it was due
	Latency float64 // ms
}

// maxSamples bounds the scatter plot's points.
const maxSamples = 20_000

// reservoir keeps a uniform sample of at most maxSamples points
// (Algorithm R), with a fixed seed so a run's picture is reproducible.
type reservoir struct {
	seen int
	pts  []point
	rng  *rand.Rand
}

func newReservoir() *reservoir {
	return &reservoir{rng: rand.New(rand.NewPCG(1, 2))}
}

func (r *reservoir) add(p point) {
	r.seen++
	if len(r.pts) < maxSamples {
		r.pts = append(r.pts, p)
		return
	}
	if j := r.rng.IntN(r.seen); j < maxSamples {
		r.pts[j] = p
	}
}

// timeline holds the per-second figures of a phase.
type timeline struct {
	secs  []Second
	hists []*hdrhistogram.Histogram
}

func (t *timeline) at(sec int) *Second {
	if sec < 0 {
		sec = 0
	}
	for len(t.secs) <= sec {
		t.secs = append(t.secs, Second{T: len(t.secs)})
		t.hists = append(t.hists, nil)
	}
	return &t.secs[sec]
}

func (t *timeline) latency(sec int, d time.Duration) {
	t.at(sec)
	if sec < 0 {
		sec = 0
	}
	if t.hists[sec] == nil {
		t.hists[sec] = newSecondHist()
	}
	record(t.hists[sec], d)
}

// seconds returns the filled-in per-second figures.
func (t *timeline) seconds() []Second {
	out := make([]Second, len(t.secs))
	for i, s := range t.secs {
		if h := t.hists[i]; h != nil {
			p := percentiles(h)
			s.Count, s.P50, s.P90, s.P99, s.Max = p.Count, p.P50, p.P90, p.P99, p.Max
		}
		out[i] = s
	}
	return out
}

// perSecond is n events over d, or 0.
func perSecond(n int, d time.Duration) float64 {
	if d <= 0 || n == 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
