package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"cafe/contracts/records"
)

// LedgerReport is what the ledger did in one phase: how far behind the
// commands it wrote their history (cafe_ledger_lag_seconds of the --scrape
// targets that run a ledger), and what the phase's commands added to
// PostgreSQL (read at --postgres-url before and after the phase).
type LedgerReport struct {
	// Events is how many events the ledgers wrote in the phase; the lag
	// percentiles are the upper bounds of the histogram's buckets, so "≤".
	Events           float64 `json:"events"`
	EventsPerCommand float64 `json:"events_per_command"`
	LagP50MS         float64 `json:"lag_p50_ms,omitempty"`
	LagP99MS         float64 `json:"lag_p99_ms,omitempty"`
	LagP99Beyond     bool    `json:"lag_p99_beyond_last_bucket,omitempty"` // p99 over LagP99MS, the histogram's last bound
	LagError         string  `json:"lag_error,omitempty"`
	// Rows and Bytes are the growth of the ledger's table cafe_commands
	// (rows, and pg_total_relation_size: table, indexes and TOAST) over
	// the phase; since records' migration 3 a command's history is in its
	// row, and cafe_events is a view.
	Rows            int64   `json:"rows"`
	RowsPerCommand  float64 `json:"rows_per_command"`
	Bytes           int64   `json:"bytes"`
	BytesPerCommand float64 `json:"bytes_per_command"`
	DBError         string  `json:"db_error,omitempty"`
}

// lagHistogram is cafe_ledger_lag_seconds summed over the targets:
// cumulative counts by upper bound (+Inf last).
type lagHistogram struct {
	bounds []float64
	counts []float64
}

const lagMetric = "cafe_ledger_lag_seconds"

// parseLag reads cafe_ledger_lag_seconds_bucket from a Prometheus text
// exposition, adding the series of several ledgers by bound. ok is false
// when the page has no such histogram (no ledger in that process).
func parseLag(r io.Reader, into map[float64]float64) (ok bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, lagMetric+"_bucket{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `le="`)
		le, rest, found := strings.Cut(rest, `"`)
		_, value, _ := strings.Cut(rest, "} ")
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ")
		bound, berr := strconv.ParseFloat(le, 64)
		v, verr := strconv.ParseFloat(value, 64)
		if !found || berr != nil || verr != nil {
			return ok, fmt.Errorf("%s: cannot read %q", lagMetric, line)
		}
		into[bound] += v
		ok = true
	}
	return ok, sc.Err()
}

func newLagHistogram(byBound map[float64]float64) lagHistogram {
	h := lagHistogram{}
	for b := range byBound {
		h.bounds = append(h.bounds, b)
	}
	slices.Sort(h.bounds) // +Inf sorts last
	for _, b := range h.bounds {
		h.counts = append(h.counts, byBound[b])
	}
	return h
}

// total is the histogram's count (its +Inf bucket).
func (h lagHistogram) total() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// since is h minus an earlier reading of the same histogram.
func (h lagHistogram) since(before lagHistogram) lagHistogram {
	out := lagHistogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i, b := range h.bounds {
		if j := slices.Index(before.bounds, b); j >= 0 {
			out.counts[i] -= before.counts[j]
		}
	}
	return out
}

// quantile is the upper bound of the first bucket holding the q-th
// quantile, 0 when empty; beyond when that is the +Inf bucket (the bound
// is then the last finite one).
func (h lagHistogram) quantile(q float64) (bound float64, beyond bool) {
	n := h.total()
	for i, c := range h.counts {
		if n <= 0 {
			break
		}
		if math.IsInf(h.bounds[i], 1) {
			return bound, true
		}
		bound = h.bounds[i]
		if c >= q*n {
			return bound, false
		}
	}
	return bound, false
}

// ledgerMeter reads the ledgers' lag histograms and the ledger's tables
// at the start and the end of each phase. Either part may be missing.
type ledgerMeter struct {
	client  *http.Client
	targets []string // /metrics URLs
	store   *records.Store
	dbURL   string
}

// ledgerSample is one reading of both.
type ledgerSample struct {
	lag    lagHistogram
	hasLag bool
	lagErr error
	db     records.Footprint
	dbErr  error
}

func newLedgerMeter(cfg Config) *ledgerMeter {
	m := &ledgerMeter{client: &http.Client{Timeout: 2 * time.Second}, dbURL: cfg.PostgresURL}
	for _, spec := range cfg.Scrape {
		_, u, _ := parseScrape(spec) // validated with the config
		m.targets = append(m.targets, u)
	}
	if cfg.PostgresURL != "" {
		if s, err := records.Open(cfg.PostgresURL, true, 1); err == nil {
			m.store = s
		}
	}
	return m
}

func (m *ledgerMeter) close() {
	if m != nil && m.store != nil {
		m.store.Close()
	}
}

func (m *ledgerMeter) sample(ctx context.Context) ledgerSample {
	var s ledgerSample
	if m == nil {
		return s
	}
	s.lag, s.hasLag, s.lagErr = m.readLag(ctx)
	switch {
	case m.dbURL == "":
		s.dbErr = errors.New("not measured (no --postgres-url)")
	case m.store == nil:
		s.dbErr = fmt.Errorf("cannot open %s", records.SettingURL)
	default:
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s.db, s.dbErr = m.store.Footprint(dctx)
		cancel()
	}
	return s
}

func (m *ledgerMeter) readLag(ctx context.Context) (lagHistogram, bool, error) {
	byBound := map[float64]float64{}
	any := false
	for _, u := range m.targets {
		ok, err := m.fetchLag(ctx, u, byBound)
		if err != nil {
			return lagHistogram{}, false, err
		}
		any = any || ok
	}
	return newLagHistogram(byBound), any, nil
}

func (m *ledgerMeter) fetchLag(ctx context.Context, u string, into map[float64]float64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	res, err := m.client.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s: HTTP %s", u, res.Status)
	}
	return parseLag(res.Body, into)
}

// Settling: after a phase, the ledger may still be writing its last
// events; the end reading waits until its count holds still.
const (
	ledgerSettleEvery = 250 * time.Millisecond
	ledgerSettleMax   = 10 * time.Second
)

// settled waits until the ledgers' event count stops growing (two
// readings of the lag apart the same), or ledgerSettleMax, then samples
// both (the tables once: counting their rows is the slow part).
func (m *ledgerMeter) settled(ctx context.Context) ledgerSample {
	if m == nil {
		return ledgerSample{}
	}
	last, ok, err := m.readLag(ctx)
	deadline := time.Now().Add(ledgerSettleMax)
	for ok && err == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(ledgerSettleEvery)
		var next lagHistogram
		if next, ok, err = m.readLag(ctx); next.total() == last.total() {
			break
		}
		last = next
	}
	return m.sample(ctx)
}

// report is the phase's ledger figures between two samples, over the
// commands it completed; nil when there is neither a ledger nor a database.
func ledgerReport(before, after ledgerSample, commands int) *LedgerReport {
	if !after.hasLag && after.lagErr == nil && after.dbErr != nil {
		return nil
	}
	r := &LedgerReport{}
	per := func(v float64) float64 {
		if commands <= 0 {
			return 0
		}
		return v / float64(commands)
	}
	switch err := errors.Join(before.lagErr, after.lagErr); {
	case err != nil:
		r.LagError = err.Error()
	case !after.hasLag:
		r.LagError = "no " + lagMetric + " on the --scrape targets (no ledger running there)"
	default:
		d := after.lag.since(before.lag)
		r.Events, r.EventsPerCommand = d.total(), per(d.total())
		p50, _ := d.quantile(0.50)
		p99, beyond := d.quantile(0.99)
		r.LagP50MS, r.LagP99MS, r.LagP99Beyond = p50*1000, p99*1000, beyond
	}
	if err := errors.Join(before.dbErr, after.dbErr); err != nil {
		r.DBError = err.Error()
		return r
	}
	r.Rows = after.db.Commands - before.db.Commands
	r.Bytes = after.db.Bytes - before.db.Bytes
	r.RowsPerCommand, r.BytesPerCommand = per(float64(r.Rows)), per(float64(r.Bytes))
	return r
}
