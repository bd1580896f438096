package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ReportVersion is the version of the JSON report's shape.
const ReportVersion = 1

// Report is everything one invocation measured; its JSON form is
// report.json in the output directory.
type Report struct {
	Version     int             `json:"version"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished"`
	Interrupted bool            `json:"interrupted"`
	Settings    Settings        `json:"settings"`
	Hops        []Hop           `json:"hops"`            // what a command crosses; the floor's figures when measured
	Floor       *FloorReport    `json:"floor,omitempty"` // --floor: the brokers' own hops, measured first
	Lone        *PhaseReport    `json:"lone,omitempty"`  // --floor: commands one at a time
	Run         *PhaseReport    `json:"run,omitempty"`   // the main run (not with --knee)
	Knee        *KneeReport     `json:"knee,omitempty"`
	Targets     []Target        `json:"targets,omitempty"`
	Services    []ServiceReport `json:"services,omitempty"`
	Foreign     int64           `json:"foreign_results"` // results on the topic that were not this bench's
	Files       []string        `json:"files"`
}

// Settings are the configuration of the run, without the token.
type Settings struct {
	URL           string  `json:"url"`
	ClientID      string  `json:"client_id"`
	MQTTURL       string  `json:"mqtt_url"`
	Mode          string  `json:"mode"` // open, closed
	Rate          float64 `json:"rate,omitempty"`
	Concurrency   int     `json:"concurrency,omitempty"`
	DurationS     float64 `json:"duration_s,omitempty"`
	Count         int     `json:"count,omitempty"`
	WarmupS       float64 `json:"warmup_s"`
	Devices       int     `json:"devices"`
	DeviceLatency float64 `json:"device_latency_ms"`
	Method        string  `json:"method"`
	PayloadBytes  int     `json:"payload_bytes"`
	RequestBytes  int     `json:"request_bytes"` // size of one request as sent
	Batch         int     `json:"batch"`
	HTTPWorkers   int     `json:"http_workers"`
	TimeoutS      float64 `json:"timeout_s"`
	CashierOnly   bool    `json:"cashier_only"`
	Floor         bool    `json:"floor"`
	Knee          bool    `json:"knee"`
	RunID         string  `json:"run_id"`
	DevicePattern string  `json:"device_pattern"`
}

// PhaseReport is one load phase. Counts other than Commands and Warmup,
// the rates and the latencies cover the measured commands only.
type PhaseReport struct {
	Name         string         `json:"name"`
	Mode         string         `json:"mode"` // open, closed
	OfferedRate  float64        `json:"offered_rate,omitempty"`
	Concurrency  int            `json:"concurrency,omitempty"`
	CashierOnly  bool           `json:"cashier_only"`
	Commands     int            `json:"commands"`        // sent in the phase, warmup included
	Warmup       int            `json:"warmup_commands"` // of those, not measured
	Sent         int            `json:"sent"`
	Accepted     int            `json:"accepted"`
	Refused      int            `json:"refused"`
	Results      int            `json:"results"`
	Missing      int            `json:"missing"` // accepted, no result after the drain
	Duplicates   int            `json:"duplicates"`
	Errors       map[string]int `json:"errors"` // "http 503", "-32001 device timeout", …
	MeasuredS    float64        `json:"measured_s"`
	AcceptedPerS float64        `json:"accepted_per_s"`
	ResultsPerS  float64        `json:"results_per_s"`
	Latency      Percentiles    `json:"latency"`             // end to end from the scheduled send (202 when cashier-only)
	LatencyRaw   Percentiles    `json:"latency_uncorrected"` // from the actual send
	Accept       Percentiles    `json:"accept_latency"`      // 202 from the scheduled send
	AcceptRaw    Percentiles    `json:"accept_latency_uncorrected"`
	Interrupted  bool           `json:"interrupted"`
	Timeline     []Second       `json:"timeline"`
	// CPU is each process's CPU over the whole phase (warmup and drain
	// included) per command completed in it (CPUCommands, warmup included).
	CPU         []ProcessCPU `json:"cpu,omitempty"`
	CPUCommands int          `json:"cpu_commands,omitempty"`
	// Ledger is what the ledger did in the phase: its lag and what the
	// phase added to PostgreSQL, per command completed (CPUCommands).
	Ledger        *LedgerReport `json:"ledger,omitempty"`
	samples       []point
	warmupSeconds float64
	hist          *hdrhistogram.Histogram // a copy of the end-to-end latencies, for the histogram picture
}

// Throughput is the phase's completions per second: results, or 202s when
// cashier-only.
func (r *PhaseReport) Throughput() float64 {
	if r.CashierOnly {
		return r.AcceptedPerS
	}
	return r.ResultsPerS
}

func (p *phase) report() *PhaseReport {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := &PhaseReport{
		Name: p.spec.Name, Mode: "open", OfferedRate: p.spec.Rate, Concurrency: p.spec.Concurrency,
		CashierOnly: p.spec.CashierOnly, Errors: map[string]int{},
		Commands: p.all.Sent, Warmup: p.all.Sent - p.meas.Sent,
		Sent: p.meas.Sent, Accepted: p.meas.Accepted, Refused: p.meas.Refused,
		Results: p.meas.Results, Duplicates: p.meas.Duplicates,
		Latency: percentiles(p.e2e), LatencyRaw: percentiles(p.e2eRaw),
		Accept: percentiles(p.acc), AcceptRaw: percentiles(p.accRaw),
		Interrupted: p.interrupted, Timeline: p.tl.seconds(),
		samples: append([]point(nil), p.samples.pts...), warmupSeconds: p.spec.Warmup.Seconds(),
		hist: p.e2e.Clone(),
	}
	if !p.spec.open() {
		r.Mode = "closed"
	}
	for k, v := range p.errs {
		r.Errors[k] = v
	}
	if !p.spec.CashierOnly {
		for i := range p.cmds {
			if c := &p.cmds[i]; c.measured && c.status == 202 && c.results == 0 {
				r.Missing++
			}
		}
	}
	// Rates run from the first measured command's due time to the last
	// answer of their kind: a pipeline that falls behind stretches them.
	if !p.measFrom.IsZero() {
		if !p.lastAccept.IsZero() {
			r.AcceptedPerS = perSecond(r.Accepted, p.lastAccept.Sub(p.measFrom))
		}
		if !p.lastResult.IsZero() {
			r.ResultsPerS = perSecond(r.Results, p.lastResult.Sub(p.measFrom))
		}
		last := p.lastDue
		if p.lastResult.After(last) {
			last = p.lastResult
		}
		if p.lastAccept.After(last) {
			last = p.lastAccept
		}
		r.MeasuredS = last.Sub(p.measFrom).Seconds()
	}
	return r
}

// KneeReport is the result of --knee: the steps, and the highest rate that
// kept p99 within the limit with every result in.
type KneeReport struct {
	P99LimitMS float64        `json:"p99_limit_ms"`
	Factor     float64        `json:"factor"`
	StepS      float64        `json:"step_s"`
	Steps      []*PhaseReport `json:"steps"`
	Knee       int            `json:"knee_step"` // index in Steps; -1: not even the first step passed
	KneeRate   float64        `json:"knee_rate"` // offered rate of that step (0: none)
	StopReason string         `json:"stop_reason"`
}

// KneeStep is the step at the knee, or nil.
func (k *KneeReport) KneeStep() *PhaseReport {
	if k == nil || k.Knee < 0 || k.Knee >= len(k.Steps) {
		return nil
	}
	return k.Steps[k.Knee]
}

// ServiceReport is what --scrape read from one service's /metrics.
type ServiceReport struct {
	Name       string  `json:"name"`
	URL        string  `json:"url"`
	RSSEnd     int64   `json:"rss_end_bytes"`
	RSSMax     int64   `json:"rss_max_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"` // process CPU time used during the run
	Cores      float64 `json:"cores"`       // CPUSeconds over the run's wall time
	Scrapes    int     `json:"scrapes"`
	Error      string  `json:"error,omitempty"` // last scrape error
}

// Failed reports whether a target failed or results were lost: the exit
// status of `cafe bench` is 1 then.
func (r *Report) Failed() bool {
	for _, t := range r.Targets {
		if t.Verdict == VerdictFail {
			return true
		}
	}
	for _, p := range r.phases() {
		if p.Missing > 0 {
			return true
		}
	}
	return false
}

// phases are every phase report, in order.
func (r *Report) phases() []*PhaseReport {
	var out []*PhaseReport
	if r.Lone != nil {
		out = append(out, r.Lone)
	}
	if r.Run != nil {
		out = append(out, r.Run)
	}
	if r.Knee != nil {
		out = append(out, r.Knee.Steps...)
	}
	return out
}

// writeJSON writes the report to dir/report.json.
func (r *Report) writeJSON(dir string) (string, error) {
	path := filepath.Join(dir, "report.json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	return path, nil
}
