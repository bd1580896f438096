package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"cafe/contracts"
)

// SettingAgainst names another implementation of cafe's public contract
// to measure in the same run (`cafe bench --against plain=http://127.0.0.1:8090`,
// with bin/plaincafe running there).
var SettingAgainst = contracts.Setting{Flag: "against"}

// pipelineUnderTest is one implementation a comparison measures.
type pipelineUnderTest struct {
	name, url string
	scrape    []string
}

// parseAgainst reads an --against value: NAME=URL, the base URL of a
// cashier-compatible HTTP API whose /metrics is scraped as NAME.
func parseAgainst(s string) (pipelineUnderTest, error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" || !isURL(raw, "http", "https") {
		return pipelineUnderTest{}, SettingAgainst.Errorf("%q: want NAME=http://host:port (another implementation's base URL)", s)
	}
	m, err := url.JoinPath(raw, "metrics")
	if err != nil {
		return pipelineUnderTest{}, SettingAgainst.Errorf("%q: %v", s, err)
	}
	return pipelineUnderTest{name: name, url: raw, scrape: []string{name + "=" + m}}, nil
}

// Comparison is what Compare measured: the floor once, then each
// implementation's phases, one after the other on the same machine.
type Comparison struct {
	Started time.Time          `json:"started"`
	Floor   *FloorReport       `json:"floor"`
	Rows    []ComparisonRow    `json:"rows"`
	Reports map[string]*Report `json:"-"`
}

// ComparisonRow is one implementation's line of the comparison table.
type ComparisonRow struct {
	Name        string  `json:"name"`
	LoneP50     float64 `json:"lone_p50_ms"`
	Knee        float64 `json:"knee_per_s,omitempty"` // highest open-loop rate with p99 within --knee-p99; 0 without --knee
	InFlight    int     `json:"in_flight"`
	RunPerS     float64 `json:"run_results_per_s"`
	RunP99      float64 `json:"run_p99_ms"`
	OwnCPU      float64 `json:"own_cpu_ms_per_command"` // the --scrape processes, at InFlight
	RabbitCPU   float64 `json:"rabbitmq_cpu_ms_per_command"`
	MosqCPU     float64 `json:"mosquitto_cpu_ms_per_command"`
	OwnSyscalls float64 `json:"own_rw_syscalls_per_command"`
	OwnAllocs   float64 `json:"own_allocs_per_command"`
}

// Compare measures the floor, then each --against implementation and
// then cafe (cfg.URL with cfg.Scrape), each with the lone phase, the
// closed loop at cfg.Concurrency and, with cfg.Knee, the knee; every
// implementation's own report goes in cfg.Out/NAME, the comparison in
// cfg.Out/compare.json, and the table on cfg.Stdout.
func Compare(ctx context.Context, cfg Config) (*Comparison, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var puts []pipelineUnderTest
	for _, a := range cfg.Against {
		p, _ := parseAgainst(a) // validated
		puts = append(puts, p)
	}
	puts = append(puts, pipelineUnderTest{name: "cafe", url: cfg.URL, scrape: cfg.Scrape})
	note := progressNote(cfg.Progress)
	c := &Comparison{Started: time.Now(), Reports: map[string]*Report{}}
	f, err := measureFloor(ctx, cfg, newRunID(), note)
	if err != nil {
		return nil, orInterrupted(ctx, err)
	}
	c.Floor = f
	for _, p := range puts {
		r, err := measureOne(ctx, cfg, p, f, note)
		if err != nil {
			return c, fmt.Errorf("%s: %w", p.name, err)
		}
		c.Reports[p.name] = r
		c.Rows = append(c.Rows, rowOf(p.name, r, cfg.Concurrency))
	}
	if err := c.write(cfg); err != nil {
		return c, err
	}
	return c, nil
}

// measureOne runs one implementation's phases against the floor f and
// writes its own report.
func measureOne(ctx context.Context, cfg Config, p pipelineUnderTest, f *FloorReport, note func(string)) (*Report, error) {
	pc := cfg
	pc.URL, pc.Scrape, pc.Out, pc.Floor = p.url, p.scrape, filepath.Join(cfg.Out, p.name), true
	pc.Stdout = io.Discard
	note("== " + p.name + " at " + p.url)
	s, err := prepare(ctx, pc)
	if err != nil {
		return nil, err
	}
	r := &Report{Version: ReportVersion, Started: time.Now(), Settings: settings(pc, s), Floor: f}
	if err := r.measure(ctx, pc, s, note); err != nil {
		return nil, err
	}
	return r, r.write(pc)
}

func rowOf(name string, r *Report, inFlight int) ComparisonRow {
	row := ComparisonRow{Name: name, InFlight: inFlight}
	if r.Lone != nil {
		row.LoneP50 = r.Lone.Latency.P50
	}
	if r.Knee != nil && r.Knee.Knee >= 0 {
		row.Knee = r.Knee.KneeRate
	}
	if r.Run == nil {
		return row
	}
	row.RunPerS, row.RunP99 = r.Run.ResultsPerS, r.Run.Latency.P99
	for _, pc := range r.Run.CPU {
		switch {
		case pc.Cafe:
			row.OwnCPU += pc.MSPerCommand
			row.OwnSyscalls += pc.SyscallsPerCommand
			row.OwnAllocs += pc.AllocsPerCommand
		case strings.HasPrefix(pc.Name, "RabbitMQ"):
			row.RabbitCPU = pc.MSPerCommand
		case strings.HasPrefix(pc.Name, "Mosquitto"):
			row.MosqCPU = pc.MSPerCommand
		}
	}
	return row
}

// write saves compare.json and prints the comparison table.
func (c *Comparison) write(cfg Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "compare.json"), b, 0o644); err != nil {
		return err
	}
	return c.WriteTable(cfg.Stdout)
}

// WriteTable prints the comparison as issue 13's table.
func (c *Comparison) WriteTable(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "cafe bench comparison (%s), one implementation after the other on the same brokers\n", c.Started.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tlone p50\tknee (p99 ≤ limit)\tin flight\tresults/s\tp99\tCPU ms/command: own\tRabbitMQ\tMosquitto\town r/w syscalls\town allocs\t")
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.1f\t%.0f\t\n", r.Name, fmtMS(r.LoneP50), orDash(r.Knee, 0), r.InFlight,
			fmtRate(r.RunPerS), fmtMS(r.RunP99), r.OwnCPU, r.RabbitCPU, r.MosqCPU, r.OwnSyscalls, r.OwnAllocs)
	}
	_ = tw.Flush()
	if f := c.Floor; f != nil {
		fmt.Fprintf(ew, "floor (hops alone, %d in flight): AMQP hop %s, MQTT round trip %s, composed %s; lone: sum of the hops' p50 %s\n",
			f.InFlight, fmtRate(f.AMQP.HopPerS), fmtRate(f.MQTT.RoundTripPerS), fmtRate(f.SeriesRate), fmtMS(f.SumP50))
		for _, r := range c.Rows {
			fmt.Fprintf(ew, "  %s: lone p50 %.2f× the floor's", r.Name, r.LoneP50/f.SumP50)
			if r.Knee > 0 {
				fmt.Fprintf(ew, "; knee %.0f%% of the composed floor", 100*r.Knee/f.SeriesRate)
			}
			fmt.Fprintln(ew)
		}
	}
	return ew.err
}
