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
	s, err := prepare(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &Report{Version: ReportVersion, Started: time.Now(), Settings: settings(cfg, s)}
	if err := r.measure(ctx, cfg, s, progressNote(cfg.Progress)); err != nil {
		return nil, err
	}
	return r, r.write(cfg)
}

// prepare checks cfg, makes the output directory and the session, and
// checks that the cashier is ready: a bench that cannot run fails before
// it measures anything.
func prepare(ctx context.Context, cfg Config) (*session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", SettingOut, err)
	}
	s, err := newSession(cfg)
	if err != nil {
		return nil, err
	}
	if err := preflight(ctx, s.http, cfg.URL); err != nil {
		return nil, err
	}
	return s, nil
}

// progressNote prints a line on w, if there is one.
func progressNote(w io.Writer) func(string) {
	return func(msg string) {
		if w != nil {
			fmt.Fprintln(w, msg)
		}
	}
}

// measure runs the floor, brings the session up, runs the phases, and
// fills r with what they measured. Its error is one that left nothing to
// report.
func (r *Report) measure(ctx context.Context, cfg Config, s *session, note func(string)) error {
	if cfg.Floor && r.Floor == nil { // a comparison measures its floor once
		f, err := measureFloor(ctx, cfg, s.run, note)
		if err != nil {
			return orInterrupted(ctx, err)
		}
		r.Floor = f
	}
	r.Hops = hops(r.Floor)
	if !cfg.CashierOnly {
		note(fmt.Sprintf("starting %d simulated devices (%s) and subscribing to clients/%s/results", cfg.Devices, r.Settings.DevicePattern, cfg.ClientID))
	}
	if err := s.start(ctx); err != nil {
		s.close()
		return orInterrupted(ctx, err)
	}
	s.cpu = newCPUMeter(cfg, "/proc")
	s.ledger = newLedgerMeter(cfg)
	defer s.ledger.close()
	var sc *scraper
	if len(cfg.Scrape) > 0 {
		sc = startScraper(cfg.Scrape)
	}
	r.runPhases(ctx, cfg, s, note)
	if sc != nil {
		r.Services = sc.finish()
	}
	s.close()
	r.Foreign = s.foreign.Load()
	r.Interrupted = ctx.Err() != nil
	r.Targets = targets(r.Floor, r.Lone, r.Run, r.Knee, cfg.CashierOnly)
	r.Finished = time.Now()
	return nil
}

// orInterrupted is err, or ErrInterrupted when ctx has ended: a failure
// that the interruption caused says nothing about the pipeline.
func orInterrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ErrInterrupted
	}
	return err
}

// runPhases runs the lone phase (with the floor), then the knee or the
// main run.
func (r *Report) runPhases(ctx context.Context, cfg Config, s *session, note func(string)) {
	if cfg.Floor && !cfg.CashierOnly {
		note(fmt.Sprintf("pipeline: %d commands one at a time (after %d not measured)", cfg.LoneCount, loneWarmup))
		r.Lone = s.measure(ctx, phaseSpec{Name: "lone", Concurrency: 1, Batch: 1, Commands: cfg.LoneCount + loneWarmup, WarmupCount: loneWarmup, Drain: cfg.Drain})
	}
	if cfg.Knee {
		r.Knee = runKnee(ctx, s, cfg, note)
		if len(cfg.Against) == 0 {
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	note("pipeline: " + cfg.describe())
	spec := phaseSpec{Name: "run", Concurrency: cfg.Concurrency, Batch: cfg.Batch, Commands: cfg.Count, Duration: cfg.Duration,
		Warmup: cfg.Warmup, CashierOnly: cfg.CashierOnly, Drain: cfg.Drain}
	if cfg.OpenLoop() {
		spec.Rate = cfg.Rate
	}
	r.Run = s.measure(ctx, spec)
}

// write draws the pictures, writes report.json and prints the table. A
// picture that cannot be drawn does not keep the report from being
// written: its error comes last.
func (r *Report) write(cfg Config) error {
	pictured := r.pictured()
	title := "cafe bench " + r.Started.Format("2006-01-02 15:04:05") + ": " + shortDescribe(cfg, pictured)
	files, perr := writePictures(cfg.Out, title, pictured, r.Knee)
	r.Files = append(files, filepath.Join(cfg.Out, "report.json"))
	if _, err := r.writeJSON(cfg.Out); err != nil {
		return err
	}
	if err := r.WriteTable(cfg.Stdout, cfg); err != nil {
		return err
	}
	return perr
}

// pictured is the phase the pictures show: the main run, or with --knee
// the knee's own step, or the step that stopped the search when none met
// the criteria.
func (r *Report) pictured() *PhaseReport {
	if r.Knee == nil || len(r.Knee.Steps) == 0 {
		return r.Run
	}
	if ks := r.Knee.KneeStep(); ks != nil {
		return ks
	}
	return r.Knee.Steps[len(r.Knee.Steps)-1]
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
func preflight(ctx context.Context, hc *http.Client, base string) error {
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
	res, err := hc.Do(req)
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
