package bench

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"cafe/contracts"
)

func TestValidateAgainst(t *testing.T) {
	c := validConfig()
	c.Rate, c.Concurrency, c.Knee = 0, 64, true
	c.Against = []string{"plain=http://127.0.0.1:8090"}
	if err := c.Validate(); err != nil {
		t.Fatalf("a comparison at 64 in flight with the knee: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"open loop":  func(c *Config) { c.Rate, c.Concurrency = 100, 0 },
		"no name":    func(c *Config) { c.Against = []string{"http://127.0.0.1:8090"} },
		"not a URL":  func(c *Config) { c.Against = []string{"plain=127.0.0.1:8090"} },
		"empty name": func(c *Config) { c.Against = []string{"=http://127.0.0.1:8090"} },
	} {
		t.Run(name, func(t *testing.T) {
			c := c
			mutate(&c)
			var se *contracts.SettingError
			if err := c.Validate(); !errors.As(err, &se) || !strings.Contains(err.Error(), "--"+SettingAgainst.Flag) {
				t.Fatalf("got %v, want an error naming --%s", err, SettingAgainst.Flag)
			}
		})
	}
	c.Against = nil // without --against, the knee still wants the open loop
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--"+SettingKnee.Flag) {
		t.Fatalf("knee with --concurrency and no --against: %v", err)
	}
}

func TestParseAgainstScrapesTheMetrics(t *testing.T) {
	p, err := parseAgainst("plain=http://127.0.0.1:8090")
	if err != nil || p.name != "plain" || p.url != "http://127.0.0.1:8090" || len(p.scrape) != 1 || p.scrape[0] != "plain=http://127.0.0.1:8090/metrics" {
		t.Fatalf("got %+v, %v", p, err)
	}
}

// A row adds up the own processes (the --scrape ones) and picks the
// brokers out of the main run's CPU table.
func TestComparisonRow(t *testing.T) {
	r := &Report{
		Lone: &PhaseReport{Latency: Percentiles{P50: 4.5}},
		Knee: &KneeReport{Knee: 0, KneeRate: 640},
		Run: &PhaseReport{ResultsPerS: 900, Latency: Percentiles{P99: 80}, CPU: []ProcessCPU{
			{Name: "cashier", Cafe: true, MSPerCommand: 0.25, SyscallsPerCommand: 5, AllocsPerCommand: 130},
			{Name: "barista", Cafe: true, MSPerCommand: 0.5, SyscallsPerCommand: 4, AllocsPerCommand: 300},
			{Name: "RabbitMQ (beam.smp)", MSPerCommand: 0.5},
			{Name: "Mosquitto (mosquitto)", MSPerCommand: 0.1},
			{Name: "load generator (cafe bench)", MSPerCommand: 0.3},
		}},
	}
	got := rowOf("cafe", r, 64)
	want := ComparisonRow{Name: "cafe", LoneP50: 4.5, Knee: 640, InFlight: 64, RunPerS: 900, RunP99: 80,
		OwnCPU: 0.75, RabbitCPU: 0.5, MosqCPU: 0.1, OwnSyscalls: 9, OwnAllocs: 430}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	var b bytes.Buffer
	c := &Comparison{Floor: &FloorReport{SumP50: 3, SeriesRate: 3200}, Rows: []ComparisonRow{got}}
	if err := c.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"cafe", "4.50ms", "640", "900/s", "0.750", "0.500", "lone p50 1.50× the floor's", "knee 20% of the composed floor"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, b.String())
		}
	}
}
