package console

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"cafe/cmd/internal/status"
)

// LatencyMetric is the histogram the pipeline page's p99 comes from: the
// time from the cashier receiving a command to its result being accepted
// by the MQTT broker.
const LatencyMetric = "cafe_caller_end_to_end_seconds"

// Latency computes the p99 of LatencyMetric over the interval since it was
// last asked, from the difference of two readings of the histogram.
type Latency struct {
	g    prometheus.Gatherer
	mu   sync.Mutex
	last map[float64]uint64 // cumulative count by upper bound
}

// NewLatency reads the histogram from g (the process's own registry in
// `cafe up`, or a Scrape of a service's /metrics).
func NewLatency(g prometheus.Gatherer) *Latency { return &Latency{g: g} }

// P99Millis is the p99 since the last call, in ms (0: nothing finished).
func (l *Latency) P99Millis() float64 {
	now := l.read()
	l.mu.Lock()
	defer l.mu.Unlock()
	last := l.last
	l.last = now
	if last == nil {
		return 0
	}
	return p99(now, last) * 1000
}

// read sums the histogram's buckets over its label sets.
func (l *Latency) read() map[float64]uint64 {
	fams, err := l.g.Gather()
	if err != nil {
		return nil
	}
	out := map[float64]uint64{}
	for _, f := range fams {
		if f.GetName() != LatencyMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				out[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	return out
}

// p99 is the upper bound of the bucket where the 99th percentile of the
// observations between two readings falls.
func p99(now, last map[float64]uint64) float64 {
	var bounds []float64
	for b := range now {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := now[bounds[len(bounds)-1]] - last[bounds[len(bounds)-1]]
	if total == 0 {
		return 0
	}
	for _, b := range bounds {
		if float64(now[b]-last[b]) >= 0.99*float64(total) {
			return b
		}
	}
	return bounds[len(bounds)-1]
}

// Scrape is a Gatherer that reads a service's /metrics over HTTP.
type Scrape string

// Gather fetches and parses the metrics page.
func (s Scrape) Gather() ([]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	fams, err := status.Scrape(ctx, http.DefaultClient, string(s))
	out := make([]*dto.MetricFamily, 0, len(fams))
	for _, f := range fams {
		out = append(out, f)
	}
	return out, err
}
