package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrInterrupted is returned when the bench was stopped before it had
// anything to report.
var ErrInterrupted = errors.New("interrupted")

// loneWarmup is how many lone commands go before the measured ones.
const loneWarmup = 10

// Run runs the bench described by cfg against a running pipeline: the floor
// first (with Floor), then the lone-command phase (with Floor), then the
// main run or the knee. It writes report.json and the pictures into
// cfg.Out, prints the table on cfg.Stdout, and returns the report. An
// interrupted run (ctx done) still reports what it measured.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("--out: %w", err)
	}
	s, err := newSession(cfg)
	if err != nil {
		return nil, err
	}
	note := func(msg string) {
		if cfg.Progress != nil {
			fmt.Fprintln(cfg.Progress, msg)
		}
	}
	if err := preflight(ctx, cfg.URL); err != nil {
		return nil, err
	}
	r := &Report{Version: ReportVersion, Started: time.Now(), Settings: settings(cfg, s)}

	if cfg.Floor {
		if r.Floor, err = measureFloor(ctx, cfg, s.run, note); err != nil {
			if ctx.Err() != nil {
				return nil, ErrInterrupted
			}
			return nil, err
		}
	}
	r.Hops = hops(r.Floor)

	if !cfg.CashierOnly {
		note(fmt.Sprintf("starting %d simulated devices (%s) and subscribing to clients/%s/results", cfg.Devices, r.Settings.DevicePattern, cfg.ClientID))
	}
	if err := s.start(ctx); err != nil {
		s.close()
		if ctx.Err() != nil {
			return nil, ErrInterrupted
		}
		return nil, err
	}
	var sc *scraper
	if len(cfg.Scrape) > 0 {
		sc = startScraper(cfg.Scrape)
	}
	if cfg.Floor && !cfg.CashierOnly {
		note(fmt.Sprintf("pipeline: %d commands one at a time (after %d not measured)", cfg.LoneCount, loneWarmup))
		lone := s.newPhase(phaseSpec{Name: "lone", Concurrency: 1, Batch: 1, Commands: cfg.LoneCount + loneWarmup, WarmupCount: loneWarmup, Drain: cfg.Drain})
		lone.run(ctx)
		r.Lone = lone.report()
	}
	if cfg.Knee {
		r.Knee = runKnee(ctx, s, cfg, note)
	} else if ctx.Err() == nil {
		note("pipeline: " + cfg.describe())
		spec := phaseSpec{Name: "run", Concurrency: cfg.Concurrency, Batch: cfg.Batch, Commands: cfg.Count, Duration: cfg.Duration,
			Warmup: cfg.Warmup, CashierOnly: cfg.CashierOnly, Drain: cfg.Drain}
		if cfg.OpenLoop() {
			spec.Rate = cfg.Rate
		}
		p := s.newPhase(spec)
		p.run(ctx)
		r.Run = p.report()
	}
	if sc != nil {
		r.Services = sc.finish()
	}
	s.close()
	r.Foreign = s.foreign.Load()
	r.Interrupted = ctx.Err() != nil
	r.Targets = targets(r.Floor, r.Lone, r.Run, r.Knee, cfg.CashierOnly)
	r.Finished = time.Now()

	pictured := r.Run
	if r.Knee != nil && len(r.Knee.Steps) > 0 {
		// The knee's own step, or the step that stopped the search when
		// none met the criteria.
		if pictured = r.Knee.KneeStep(); pictured == nil {
			pictured = r.Knee.Steps[len(r.Knee.Steps)-1]
		}
	}
	title := "cafe bench " + r.Started.Format("2006-01-02 15:04:05") + ": " + shortDescribe(cfg, pictured)
	files, perr := writePictures(cfg.Out, title, pictured, r.Knee)
	r.Files = append(files, filepath.Join(cfg.Out, "report.json"))
	if _, err := r.writeJSON(cfg.Out); err != nil {
		return r, err
	}
	if err := r.WriteTable(cfg.Stdout, cfg); err != nil {
		return r, err
	}
	return r, perr
}

// shortDescribe titles the pictures.
func shortDescribe(cfg Config, p *PhaseReport) string {
	load := fmt.Sprintf("closed loop ×%d", cfg.Concurrency)
	if p != nil && p.Mode == "open" {
		load = "open loop " + fmtRate(p.OfferedRate)
	}
	if p != nil && p.Name != "run" {
		load = p.Name + ", " + load
	}
	return fmt.Sprintf("%s, %d devices, %d-byte %s, batch %d", load, cfg.Devices, cfg.PayloadBytes, cfg.Method, cfg.Batch)
}

func settings(cfg Config, s *session) Settings {
	st := Settings{
		URL: cfg.URL, ClientID: cfg.ClientID, MQTTURL: cfg.MQTTURL, Mode: "open", Concurrency: cfg.Concurrency,
		Count: cfg.Count, WarmupS: cfg.Warmup.Seconds(), Devices: cfg.Devices, DeviceLatency: ms(cfg.DeviceLatency),
		Method: cfg.Method, PayloadBytes: cfg.PayloadBytes, Batch: cfg.Batch, HTTPWorkers: cfg.HTTPWorkers,
		TimeoutS: cfg.Timeout.Seconds(), CashierOnly: cfg.CashierOnly, Floor: cfg.Floor, Knee: cfg.Knee,
		RunID: s.run, DevicePattern: "bench-" + s.run + "-%d",
		RequestBytes: len(s.parts.appendRequest(nil, commandID(s.run, 0, 0))),
	}
	if cfg.OpenLoop() {
		st.Rate = cfg.Rate
	} else {
		st.Mode = "closed"
	}
	if cfg.Count == 0 {
		st.DurationS = cfg.Duration.Seconds()
	}
	return st
}

// preflight checks that the cashier answers and is ready, so that a bench
// against nothing fails at once and says why.
func preflight(ctx context.Context, base string) error {
	u, err := url.JoinPath(base, "readyz")
	if err != nil {
		return fmt.Errorf("--url %q: %w", base, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("--url %q: %w", base, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the cashier at %s: %w (is the pipeline running? `cafe up`, or `task up` in another terminal)", base, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("the cashier at %s is not ready (%s): %s", base, res.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
