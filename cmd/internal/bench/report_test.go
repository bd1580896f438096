package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sampleRun is a phase report as a 500/s open-loop run would give.
func sampleRun(t *testing.T) *PhaseReport {
	t.Helper()
	p, _ := testPhase(phaseSpec{Name: "run", Rate: 500, Batch: 1, Warmup: time.Second}, 2500)
	for i := range 2500 {
		due := t0.Add(time.Duration(i) * 2 * time.Millisecond)
		lat := time.Duration(2+i%7) * time.Millisecond
		if i%500 == 0 {
			lat = 40 * time.Millisecond
		}
		p.markSent(i, 1, due, due, nil)
		p.answer(i, 1, 202, "", due.Add(time.Millisecond))
		p.onResult(i, due.Add(lat), 0)
	}
	r := p.report()
	r.CPUCommands = p.completed()
	r.CPU = []ProcessCPU{
		{Name: "cafe", PID: 10, Cafe: true, Source: "/proc/10", CPUMS: 875, MSPerCommand: 0.35, SyscallsPerCommand: 6.5, AllocsPerCommand: 123},
		{Name: "RabbitMQ (beam.smp)", PID: 11, Source: "/proc/11", CPUMS: 1000, MSPerCommand: 0.4},
		{Name: "Mosquitto", Error: "Mosquitto (tcp://127.0.0.1:1883): nothing listens on port 1883 on this machine"},
	}
	return r
}

func sampleFloor() *FloorReport {
	f := &FloorReport{MessageBytes: 200, InFlight: FloorInFlight,
		AMQP: AMQPFloor{PublishPerS: 18000, HopPerS: 10000, Lone: Percentiles{Count: 200, P50: 0.9}},
		MQTT: MQTTFloor{RoundTripPerS: 13000, Lone: Percentiles{Count: 200, P50: 0.2}}}
	var inv float64
	for _, h := range hops(f) {
		f.SumP50 += h.FloorP50
		inv += 1 / h.FloorRate
	}
	f.SeriesRate = 1 / inv
	return f
}

func sampleReport(t *testing.T) *Report {
	t.Helper()
	run := sampleRun(t)
	lone := &PhaseReport{Name: "lone", Mode: "closed", Concurrency: 1, Latency: Percentiles{Count: 200, P50: 2.5}, Errors: map[string]int{}}
	f := sampleFloor()
	return &Report{
		Version: ReportVersion, Started: t0, Finished: t0.Add(time.Minute),
		Settings: Settings{URL: "http://127.0.0.1:8080", ClientID: "demo", Mode: "open", Rate: 500, RunID: "abc123"},
		Hops:     hops(f), Floor: f, Lone: lone, Run: run,
		Targets:  targets(f, lone, run, nil, false),
		Services: []ServiceReport{{Name: "cafe", URL: "http://127.0.0.1:8080/metrics", RSSEnd: 30 << 20, RSSMax: 32 << 20, CPUSeconds: 3, Cores: 0.3, Scrapes: 11}},
	}
}

func TestReportJSONShape(t *testing.T) {
	r := sampleReport(t)
	dir := t.TempDir()
	path, err := r.writeJSON(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"version", "started", "finished", "interrupted", "settings.mode", "settings.rate", "settings.run_id",
		"hops", "floor.amqp.publish_confirm_per_s", "floor.amqp.hop_per_s", "floor.amqp.lone.p50_ms",
		"floor.mqtt.round_trip_per_s", "floor.mqtt.lone_round_trip.p50_ms", "floor.sum_p50_ms", "floor.series_rate_per_s",
		"lone.latency.p50_ms", "run.latency.p50_ms", "run.latency.p90_ms", "run.latency.p99_ms", "run.latency.p99_9_ms",
		"run.latency.max_ms", "run.latency_uncorrected.p99_ms", "run.accept_latency.p50_ms", "run.accept_latency_uncorrected.p99_ms",
		"run.accepted_per_s", "run.results_per_s", "run.missing", "run.duplicates", "run.errors", "run.timeline",
		"targets", "services", "foreign_results", "files", "run.cpu_commands",
	} {
		if _, ok := lookup(doc, path); !ok {
			t.Errorf("report.json has no %s", path)
		}
	}
	if tl, _ := lookup(doc, "run.timeline"); len(tl.([]any)) != 6 { // 5 s of sending, the last results in the 6th
		t.Errorf("timeline has %d seconds, want 6", len(tl.([]any)))
	}
	cpu, _ := lookup(doc, "run.cpu")
	if c, _ := cpu.([]any); len(c) != 3 {
		t.Fatalf("run.cpu = %v, want the three processes", cpu)
	}
	rabbit := cpu.([]any)[1].(map[string]any)
	for _, k := range []string{"name", "pid", "cafe", "source", "cpu_ms", "cpu_ms_per_command"} {
		if _, ok := rabbit[k]; !ok {
			t.Errorf("run.cpu[1] has no %q: %v", k, rabbit)
		}
	}
	if _, ok := rabbit["rw_syscalls_per_command"]; ok {
		t.Errorf("run.cpu[1] has system calls it never measured: %v", rabbit)
	}
	first := doc["targets"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "rule", "measured", "floor", "ratio", "threshold", "verdict"} {
		if _, ok := first[k]; !ok {
			t.Errorf("target has no %q", k)
		}
	}
	if strings.Contains(string(b), "token") {
		t.Error("report.json mentions a token")
	}
}

func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func TestTargets(t *testing.T) {
	f := sampleFloor() // Σp50 = 0.9+0.2+0.9+0.1 = 2.1 ms
	keptUp := &PhaseReport{Mode: "open", OfferedRate: 500, ResultsPerS: 499, AcceptedPerS: 499}
	behind := &PhaseReport{Mode: "open", OfferedRate: 5000, ResultsPerS: 900}
	closed := &PhaseReport{Mode: "closed", Concurrency: 256, ResultsPerS: 900, AcceptedPerS: 15000}
	capacity := &PhaseReport{Mode: "closed", Concurrency: 256, ResultsPerS: 2500}
	fastLone := &PhaseReport{Latency: Percentiles{Count: 200, P50: 3}}
	slowLone := &PhaseReport{Latency: Percentiles{Count: 200, P50: 5}}
	tests := []struct {
		name        string
		lone, run   *PhaseReport
		knee        *KneeReport
		cashierOnly bool
		want        map[string]string
	}{
		{"lone within 2x, rate kept up", fastLone, keptUp, nil, false, map[string]string{"lone command": VerdictPass, "throughput": VerdictOpen}},
		{"lone over 2x, fell behind", slowLone, behind, nil, false, map[string]string{"lone command": VerdictFail, "throughput": VerdictFail}},
		{"closed loop below half", fastLone, closed, nil, false, map[string]string{"throughput": VerdictFail}},
		{"closed loop above half", fastLone, capacity, nil, false, map[string]string{"throughput": VerdictPass}},
		{"knee decides", fastLone, nil, &KneeReport{Knee: 0, Steps: []*PhaseReport{{Mode: "open", OfferedRate: 2000, ResultsPerS: 2000}}}, false,
			map[string]string{"throughput": VerdictPass}},
		{"no knee step passed", fastLone, nil, &KneeReport{Knee: -1, Steps: []*PhaseReport{{Mode: "open", OfferedRate: 200, ResultsPerS: 200}}}, false,
			map[string]string{"throughput": VerdictFail}},
		{"cashier alone", nil, closed, nil, true, map[string]string{"cashier alone": VerdictPass}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[string]string{}
			for _, tg := range targets(f, tt.lone, tt.run, tt.knee, tt.cashierOnly) {
				got[tg.Name] = tg.Verdict
			}
			for name, want := range tt.want {
				if got[name] != want {
					t.Errorf("%s: %q, want %q (all: %v)", name, got[name], want, got)
				}
			}
		})
	}
	if targets(nil, fastLone, keptUp, nil, false) != nil {
		t.Error("targets without a floor")
	}
}

func TestHopsAddUp(t *testing.T) {
	f := sampleFloor()
	if got := f.SumP50; got < 2.0999 || got > 2.1001 {
		t.Errorf("Σ p50 = %v, want 2.1 (two AMQP hops, one round trip, half a round trip)", got)
	}
	want := 1 / (2/10000.0 + 1/13000.0 + 1/26000.0)
	if got := f.SeriesRate; got < want*0.999 || got > want*1.001 {
		t.Errorf("series rate %v, want %v", got, want)
	}
}

func TestTableNamesTheFigures(t *testing.T) {
	r := sampleReport(t)
	var out bytes.Buffer
	cfg := validConfig()
	cfg.Floor = true
	if err := r.WriteTable(&out, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"floor", "commands queue", "barista ↔ device", "caller → app", "lone", "run", "p99.9",
		"accepted/s", "targets", "lone command", "throughput", "INCONCLUSIVE", "RSS max", "cafe",
		"CPU per command", "0.350", "6.5", "allocs/command", "123", "RabbitMQ (beam.smp)", "0.400", "nothing listens on port 1883",
		"cafe's own (--scrape)", "all measured, 2500 commands", "0.750"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestPicturesAreWritten(t *testing.T) {
	r := sampleRun(t)
	knee := &KneeReport{P99LimitMS: 100, StepS: 5, Factor: 1.25, Knee: 1, Steps: []*PhaseReport{
		{Name: "knee1", Mode: "open", OfferedRate: 200, Latency: Percentiles{Count: 1, P50: 2, P99: 5}},
		{Name: "knee2", Mode: "open", OfferedRate: 250, Latency: Percentiles{Count: 1, P50: 2.2, P99: 8}},
		{Name: "knee3", Mode: "open", OfferedRate: 312, Latency: Percentiles{Count: 1, P50: 30, P99: 400}},
	}}
	dir := t.TempDir()
	files, err := writePictures(dir, "test", r, knee)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"latency-over-time.png", "throughput-over-time.png", "latency-histogram.png", "knee.png"}
	if len(files) != len(want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	for _, name := range want {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 300 {
			t.Errorf("%s is %v: too small to read", name, b)
		}
	}
}

func TestLogBinsKeepEveryCount(t *testing.T) {
	h := newHist()
	for i := range 1000 {
		record(h, time.Duration(500+i*37)*time.Microsecond)
	}
	var sum float64
	bins := logBins(h)
	for i, b := range bins {
		sum += b.Weight
		if i > 0 && b.Min < bins[i-1].Max*0.9999 {
			t.Errorf("bin %d starts at %v before the previous one ends (%v)", i, b.Min, bins[i-1].Max)
		}
	}
	if sum != 1000 {
		t.Errorf("bins hold %v counts, want 1000", sum)
	}
}

func TestKneeCriteria(t *testing.T) {
	cfg := validConfig()
	ok := &PhaseReport{Mode: "open", OfferedRate: 1000, ResultsPerS: 998, Latency: Percentiles{Count: 5000, P99: 40}, Errors: map[string]int{}}
	tests := []struct {
		name   string
		mutate func(*PhaseReport)
		want   string
	}{
		{"within", func(*PhaseReport) {}, ""},
		{"slow p99", func(r *PhaseReport) { r.Latency.P99 = 150 }, "p99 150ms over 100ms"},
		{"missing", func(r *PhaseReport) { r.Missing = 3 }, "3 results missing"},
		{"errors", func(r *PhaseReport) { r.Errors = map[string]int{"http 503": 2} }, "2 errors"},
		{"fell behind", func(r *PhaseReport) { r.ResultsPerS = 800 }, "fell behind: 800/s of 1000/s"},
		{"interrupted", func(r *PhaseReport) { r.Interrupted = true }, "interrupted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := *ok
			tt.mutate(&r)
			pass, why := kneeOK(&r, cfg)
			if pass != (tt.want == "") || !strings.Contains(why, tt.want) {
				t.Errorf("kneeOK = %v, %q; want %q", pass, why, tt.want)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.7435008e+07
process_cpu_seconds_total 12.5
process_virtual_memory_bytes 1.2e+09
go_goroutines 42
go_memstats_mallocs_total 1.234567e+06
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if !m.hasRSS || m.rss != 27435008 || !m.hasCPU || m.cpu != 12.5 || !m.hasMallocs || m.mallocs != 1234567 {
		t.Errorf("got %+v", m)
	}
	for _, bad := range []string{"process_resident_memory_bytes lots\n", "go_memstats_mallocs_total 0x1p-2z\n"} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: a malformed value, no error", bad)
		}
	}
}

func TestParseScrape(t *testing.T) {
	tests := []struct{ in, name, url string }{
		{"cashier=http://127.0.0.1:8080/metrics", "cashier", "http://127.0.0.1:8080/metrics"},
		{"http://127.0.0.1:9100/metrics", "127.0.0.1:9100", "http://127.0.0.1:9100/metrics"},
		{"http://h:1/metrics?x=1", "h:1", "http://h:1/metrics?x=1"},
	}
	for _, tt := range tests {
		name, u, err := parseScrape(tt.in)
		if err != nil || name != tt.name || u != tt.url {
			t.Errorf("parseScrape(%q) = %q, %q, %v; want %q, %q", tt.in, name, u, err, tt.name, tt.url)
		}
	}
	for _, bad := range []string{"", "x=", "cafe=ftp://h/metrics", "127.0.0.1:8080"} {
		if _, _, err := parseScrape(bad); err == nil {
			t.Errorf("parseScrape(%q): no error", bad)
		}
	}
}
