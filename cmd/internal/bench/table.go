package bench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// fmtMS formats milliseconds with a precision that suits their size.
func fmtMS(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	}
}

func fmtRate(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "/s" }

// describe is the one-line description of the load.
func (c Config) describe() string {
	var b strings.Builder
	if c.Knee {
		fmt.Fprintf(&b, "knee: open loop from %s ×%g every %v until p99 > %v", fmtRate(c.Rate), c.KneeFactor, c.KneeStep, c.KneeP99)
	} else if c.OpenLoop() {
		fmt.Fprintf(&b, "open loop at %s", fmtRate(c.Rate))
	} else {
		fmt.Fprintf(&b, "closed loop, %d in flight", c.Concurrency)
	}
	if !c.Knee {
		if c.Count > 0 {
			fmt.Fprintf(&b, ", %d commands", c.Count)
		} else {
			fmt.Fprintf(&b, " for %v", c.Duration)
		}
	}
	if c.Warmup > 0 {
		fmt.Fprintf(&b, " (first %v not measured)", c.Warmup)
	}
	if c.CashierOnly {
		b.WriteString("; cashier alone: only the 202s count")
	} else {
		fmt.Fprintf(&b, "; %d simulated devices replying after %v", c.Devices, c.DeviceLatency)
	}
	fmt.Fprintf(&b, "; %s, %d-byte requests, %d per HTTP call, %d HTTP workers", c.Method, c.PayloadBytes, c.Batch, c.HTTPWorkers)
	return b.String()
}

// WriteTable writes the readable report: what ran, the floor, each
// phase's figures and what went wrong in it, the knee, the services, the
// targets and the files written.
func (r *Report) WriteTable(w io.Writer, cfg Config) error {
	ew := &errWriter{w: w}
	r.writeHeader(ew, cfg)
	if f := r.Floor; f != nil {
		r.writeFloor(ew, f)
	}
	r.writeLatency(ew, cfg)
	for _, p := range r.phases() {
		writePhaseNotes(ew, p)
	}
	if k := r.Knee; k != nil {
		writeKnee(ew, k)
	}
	if r.Foreign > 0 {
		fmt.Fprintf(ew, "%d results on the topic were not this bench's (another app or bench on the same client)\n", r.Foreign)
	}
	r.writeServices(ew)
	r.writeCPU(ew)
	r.writeLedger(ew)
	r.writeTargets(ew)
	r.writeFiles(ew)
	return ew.err
}

// writeHeader says which run this is, against what, and with which load.
func (r *Report) writeHeader(w io.Writer, cfg Config) {
	fmt.Fprintf(w, "cafe bench (run %s, %s)\n", r.Settings.RunID, r.Started.Format(time.RFC3339))
	fmt.Fprintf(w, "pipeline: %s, client %s", r.Settings.URL, r.Settings.ClientID)
	if !cfg.CashierOnly {
		fmt.Fprintf(w, ", results on clients/%s/results", r.Settings.ClientID)
	}
	fmt.Fprintf(w, "\nload:     %s\n", cfg.describe())
	if r.Interrupted {
		fmt.Fprintln(w, "INTERRUPTED: the figures cover what ran before the interruption")
	}
}

// writeLatency writes one row of figures per phase.
func (r *Report) writeLatency(w io.Writer, cfg Config) {
	fmt.Fprintln(w)
	what := "end to end: HTTP submit → result on MQTT, from the scheduled send"
	if cfg.CashierOnly {
		what = "cashier alone: 202 latency, from the scheduled send"
	}
	fmt.Fprintf(w, "latency (%s; warmup excluded)\n", what)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tload\tcommands\tp50\tp90\tp99\tp99.9\tmax\t202 p50\t202 p99\taccepted/s\tresults/s\tmissing\tdup\terrors\t")
	for _, p := range r.phases() {
		load := fmt.Sprintf("open %s", fmtRate(p.OfferedRate))
		if p.Mode == "closed" {
			load = fmt.Sprintf("closed ×%d", p.Concurrency)
		}
		results := fmtRate(p.ResultsPerS)
		if p.CashierOnly {
			results = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", p.Name, load, p.Sent,
			fmtMS(p.Latency.P50), fmtMS(p.Latency.P90), fmtMS(p.Latency.P99), fmtMS(p.Latency.P999), fmtMS(p.Latency.Max),
			fmtMS(p.AcceptRaw.P50), fmtMS(p.AcceptRaw.P99), fmtRate(p.AcceptedPerS), results, p.Missing, p.Duplicates, errorCount(p))
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "(202 p50/p99: the cashier's own answer time, from the actual send)")
}

// writePhaseNotes says what a phase's row alone does not: senders that fell
// behind the schedule, the errors by kind, refusals and missing results.
func writePhaseNotes(w io.Writer, p *PhaseReport) {
	if p.Latency.Count > 0 && p.LatencyRaw.P99 > 0 && p.Latency.P99 > 1.5*p.LatencyRaw.P99 {
		fmt.Fprintf(w, "%s: p99 %s from the schedule vs %s from the actual send: the senders fell behind the schedule (more --http-workers?)\n",
			p.Name, fmtMS(p.Latency.P99), fmtMS(p.LatencyRaw.P99))
	}
	if len(p.Errors) > 0 {
		fmt.Fprintf(w, "%s errors:", p.Name)
		for _, k := range sortedKeys(p.Errors) {
			fmt.Fprintf(w, "  %s ×%d", k, p.Errors[k])
		}
		fmt.Fprintln(w)
	}
	if p.Refused > 0 || p.Missing > 0 {
		fmt.Fprintf(w, "%s: %d sent, %d accepted, %d refused, %d results, %d missing after the drain\n",
			p.Name, p.Sent, p.Accepted, p.Refused, p.Results, p.Missing)
	}
}

// writeKnee says where the knee is, and why the search stopped.
func writeKnee(w io.Writer, k *KneeReport) {
	if ks := k.KneeStep(); ks != nil {
		fmt.Fprintf(w, "knee: %s offered (%s completed, p50 %s, p99 %s), the highest rate with p99 ≤ %s and every result in\n",
			fmtRate(ks.OfferedRate), fmtRate(ks.Throughput()), fmtMS(ks.Latency.P50), fmtMS(ks.Latency.P99), fmtMS(k.P99LimitMS))
	} else {
		fmt.Fprintf(w, "knee: none; even the first step missed the criteria\n")
	}
	fmt.Fprintf(w, "knee stopped at %s\n", k.StopReason)
}

// writeServices writes what --scrape read.
func (r *Report) writeServices(w io.Writer) {
	if len(r.Services) == 0 {
		return
	}
	fmt.Fprintln(w, "\nservices (from --scrape)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "service\tRSS end\tRSS max\tCPU s\tcores\tscrapes\t")
	for _, s := range r.Services {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%.2f\t%d\t%s\n", s.Name, mib(s.RSSEnd), mib(s.RSSMax), s.CPUSeconds, s.Cores, s.Scrapes, s.Error)
	}
	_ = tw.Flush()
}

// tablePhases are the phases the CPU and ledger tables show: the lone
// phase, the main run and the knee's step.
func (r *Report) tablePhases() []*PhaseReport {
	phases := []*PhaseReport{r.Lone, r.Run}
	if r.Knee != nil {
		phases = append(phases, r.Knee.KneeStep())
	}
	return phases
}

// writeCPU writes each process's CPU per command, for the tablePhases.
func (r *Report) writeCPU(w io.Writer) {
	r.writePhaseTable(w, "\nCPU per command (each process over the whole phase, warmup and drain included, over the commands completed in it;\n"+
		"every process shares this machine's cores; r/w syscalls: /proc/PID/io syscr+syscw)",
		"phase\tprocess\tpid\tCPU ms\tms/command\tr/w syscalls/command\tallocs/command\t",
		func(p *PhaseReport) bool { return len(p.CPU) > 0 }, writeCPURows)
}

// writePhaseTable writes, for each of the tablePhases that has, a table's
// rows, after the title and the column heads (once, if any phase has).
func (r *Report) writePhaseTable(w io.Writer, title, heads string, has func(*PhaseReport) bool, rows func(io.Writer, *PhaseReport)) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	heading := false
	for _, p := range r.tablePhases() {
		if p == nil || !has(p) {
			continue
		}
		if !heading {
			fmt.Fprintln(w, title)
			fmt.Fprintln(tw, heads)
			heading = true
		}
		rows(tw, p)
	}
	_ = tw.Flush()
}

func writeCPURows(tw io.Writer, p *PhaseReport) {
	var own, all float64
	for _, c := range p.CPU {
		if c.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t\t-\t-\t-\t-\t  %s\n", p.Name, c.Name, c.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.3f\t%s\t%s\t\n", p.Name, c.Name, c.PID, c.CPUMS, c.MSPerCommand,
			orDash(c.SyscallsPerCommand, 1), orDash(c.AllocsPerCommand, 0))
		all += c.MSPerCommand
		if c.Cafe {
			own += c.MSPerCommand
		}
	}
	fmt.Fprintf(tw, "%s\tcafe's own (--scrape)\t\t\t%.3f\t\t\t\n", p.Name, own)
	fmt.Fprintf(tw, "%s\tall measured, %d commands\t\t\t%.3f\t\t\t\n", p.Name, p.CPUCommands, all)
}

// writeLedger writes the ledger's lag and what each of the tablePhases
// added to PostgreSQL per command.
func (r *Report) writeLedger(w io.Writer) {
	r.writePhaseTable(w, "\nledger (events written and their lag, from cafe_ledger_lag_seconds of the --scrape targets: bucket bounds, so ≤;\n"+
		"rows and bytes added to cafe_commands (history included), table + indexes + TOAST, over the commands completed)",
		"phase\tevents\tevents/command\tlag p50\tlag p99\trows/command\tbytes/command\t",
		func(p *PhaseReport) bool { return p.Ledger != nil }, writeLedgerRow)
}

func writeLedgerRow(tw io.Writer, p *PhaseReport) {
	l := p.Ledger
	lag := []string{"-", "-", "-", "-"}
	if l.LagError == "" {
		p99 := fmtMS(l.LagP99MS)
		if l.LagP99Beyond {
			p99 = ">" + p99
		}
		lag = []string{fmt.Sprintf("%.0f", l.Events), fmt.Sprintf("%.2f", l.EventsPerCommand), fmtMS(l.LagP50MS), p99}
	}
	db := []string{"-", "-"}
	if l.DBError == "" {
		db = []string{fmt.Sprintf("%.2f", l.RowsPerCommand), fmt.Sprintf("%.0f", l.BytesPerCommand)}
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t  %s\n", p.Name, lag[0], lag[1], lag[2], lag[3], db[0], db[1],
		strings.TrimSpace(l.LagError+" "+l.DBError))
}

// orDash formats v with prec decimals, or "-" when it was not measured.
func orDash(v float64, prec int) string {
	if v <= 0 {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// writeTargets writes each target's verdict, with its rule and any note.
func (r *Report) writeTargets(w io.Writer) {
	if len(r.Targets) == 0 {
		return
	}
	fmt.Fprintln(w, "\ntargets (pipeline against the floor, both measured in this run)")
	for _, t := range r.Targets {
		op := "≥"
		if t.Name == "lone command" {
			op = "≤"
		}
		meas, floor := fmtRate(t.Measured), fmtRate(t.Floor)
		if t.Unit == "ms" {
			meas, floor = fmtMS(t.Measured), fmtMS(t.Floor)
		}
		fmt.Fprintf(w, "  %-13s %-12s %s vs floor %s: ratio %.2f (want %s %.2f)\n", t.Name, t.Verdict, meas, floor, t.Ratio, op, t.Threshold)
		fmt.Fprintf(w, "  %-13s %-12s %s\n", "", "", t.Rule)
		if t.Note != "" {
			fmt.Fprintf(w, "  %-13s %-12s %s\n", "", "", t.Note)
		}
	}
}

// writeFiles lists the files written.
func (r *Report) writeFiles(w io.Writer) {
	if len(r.Files) == 0 {
		return
	}
	fmt.Fprintln(w, "\nfiles:")
	for _, f := range r.Files {
		fmt.Fprintln(w, "  "+f)
	}
}

func (r *Report) writeFloor(w io.Writer, f *FloorReport) {
	fmt.Fprintf(w, "\nfloor (the brokers alone, same %d-byte messages, measured first in this run; %d in flight for rates)\n", f.MessageBytes, f.InFlight)
	fmt.Fprintf(w, "  AMQP  publish+confirm %s   publish+confirm+consume+ack %s   one at a time: delivered p50 %s, confirmed p50 %s\n",
		fmtRate(f.AMQP.PublishPerS), fmtRate(f.AMQP.HopPerS), fmtMS(f.AMQP.Lone.P50), fmtMS(f.AMQP.LoneConfirm.P50))
	fmt.Fprintf(w, "  MQTT  QoS 1 round trip %s   one at a time: p50 %s\n", fmtRate(f.MQTT.RoundTripPerS), fmtMS(f.MQTT.Lone.P50))
	fmt.Fprintln(w, "  hops a command crosses:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, h := range r.Hops {
		fmt.Fprintf(tw, "    %s\t%s\tp50 %s\t%s\n", h.Name, h.Kind, fmtMS(h.FloorP50), fmtRate(h.FloorRate))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  sum of the hops' p50 + device latency %s = %s;  hops in series 1/Σ(1/rate) = %s\n",
		fmtMS(f.DeviceLatency), fmtMS(f.SumP50), fmtRate(f.SeriesRate))
}

func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return len(p), nil
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, nil
}
