package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics the status reads from the workers' ops endpoints (/metrics).
const (
	metricBreakersOpen = "cafe_barista_breakers_open"
	metricQueueWait    = "cafe_barista_queue_wait_seconds"
)

func (g *Gatherer) baristaMetrics(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	up, families, err := scrapeAll(ctx, g.client, g.cfg.Baristas)
	mu.Lock()
	defer mu.Unlock()
	s.Baristas.Endpoints, s.Baristas.Up = len(g.cfg.Baristas), up
	if up > 0 {
		open, wait := 0.0, -1.0
		for _, f := range families {
			open += sum(f[metricBreakersOpen])
			wait = max(wait, maxOf(f[metricQueueWait]))
		}
		s.Breakers = &Count{N: int(open), Source: fmt.Sprintf("barista metrics (%d of %d endpoints)", up, len(g.cfg.Baristas))}
		if wait >= 0 {
			s.wait = &wait
		}
	}
	return err
}

func (g *Gatherer) callerMetrics(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	up, _, err := scrapeAll(ctx, g.client, g.cfg.Callers)
	mu.Lock()
	defer mu.Unlock()
	s.Callers.Endpoints, s.Callers.Up = len(g.cfg.Callers), up
	return err
}

func scrapeAll(ctx context.Context, client *http.Client, urls []string) (int, []map[string]*dto.MetricFamily, error) {
	var out []map[string]*dto.MetricFamily
	var errs []error
	for _, u := range urls {
		f, err := scrape(ctx, client, u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, f)
	}
	return len(out), out, errors.Join(errs...)
}

// maxMetricsBytes bounds what one /metrics answer may be.
const maxMetricsBytes = 8 << 20

func scrape(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint %q: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint %s unreachable: %w (is the process running? its CAFE_HTTP_ADDR?)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics endpoint %s answered %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, maxMetricsBytes))
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint %s: not Prometheus text: %w", url, err)
	}
	return f, nil
}

func sum(f *dto.MetricFamily) float64 {
	total := 0.0
	for _, m := range f.GetMetric() {
		total += value(m)
	}
	return total
}

func maxOf(f *dto.MetricFamily) float64 {
	best := -1.0
	for _, m := range f.GetMetric() {
		best = max(best, value(m))
	}
	return best
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// Scrape reads one /metrics page (the console's p99 latency comes from
// the callers' histogram this way).
func Scrape(ctx context.Context, client *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	return scrape(ctx, client, url)
}
