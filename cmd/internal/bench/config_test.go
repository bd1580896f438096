package bench

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
)

func validConfig() Config {
	c := Defaults()
	c.Token, c.ClientID, c.Out = "t0ken", "demo", "/tmp/x"
	return c
}

func TestValidateAcceptsTheDefaults(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c := validConfig()
	c.Rate, c.Concurrency = 0, 64
	if err := c.Validate(); err != nil {
		t.Fatalf("closed loop: %v", err)
	}
	c = validConfig()
	c.Count, c.Duration = 50, 0
	if err := c.Validate(); err != nil {
		t.Fatalf("count: %v", err)
	}
}

func TestValidateExplainsBadFlags(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"zero rate", func(c *Config) { c.Rate = 0 }, "--rate 0: want more than 0"},
		{"negative rate", func(c *Config) { c.Rate = -5 }, "--rate -5"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "--rate NaN"},
		{"huge rate", func(c *Config) { c.Rate = 2e6 }, "at most 1000000"},
		{"rate and concurrency", func(c *Config) { c.Concurrency = 8 }, "give one"},
		{"negative concurrency", func(c *Config) { c.Rate, c.Concurrency = 0, -1 }, "--concurrency -1"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "--duration 0s: want more than 0"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, "--duration -1s"},
		{"negative count", func(c *Config) { c.Count = -3 }, "--count -3"},
		{"warmup as long as the run", func(c *Config) { c.Warmup = c.Duration }, "--warmup 10s"},
		{"no devices", func(c *Config) { c.Devices = 0 }, "--devices 0"},
		{"negative device latency", func(c *Config) { c.DeviceLatency = -time.Millisecond }, "--device-latency -1ms"},
		{"payload too small", func(c *Config) { c.PayloadBytes = 10 }, "--payload-bytes 10: want at least"},
		{"payload too large for a body", func(c *Config) { c.PayloadBytes, c.Batch = 20_000, 100 }, "exceed the cashier's"},
		{"batch zero", func(c *Config) { c.Batch = 0 }, "--batch 0"},
		{"batch over the cashier's limit", func(c *Config) { c.Batch = 101 }, "--batch 101"},
		{"no http workers", func(c *Config) { c.HTTPWorkers = 0 }, "--http-workers 0"},
		{"reserved method", func(c *Config) { c.Method = "rpc.x" }, "--method"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, "--timeout 0s"},
		{"bad url", func(c *Config) { c.URL = "127.0.0.1:8080" }, "--url"},
		{"no token", func(c *Config) { c.Token = "" }, "no token"},
		{"bad client", func(c *Config) { c.ClientID = "a/b" }, "--client"},
		{"knee in closed loop", func(c *Config) { c.Knee, c.Rate, c.Concurrency = true, 0, 4 }, "--knee steps the open-loop rate"},
		{"knee factor 1", func(c *Config) { c.Knee, c.KneeFactor = true, 1 }, "--knee-factor 1"},
		{"bad scrape", func(c *Config) { c.Scrape = []string{"cafe=localhost:8080/metrics"} }, "--scrape"},
		{"bad amqp url with floor", func(c *Config) { c.Floor, c.AMQPURL = true, "http://x" }, "--amqp-url"},
		{"no out", func(c *Config) { c.Out = "" }, "--out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := validConfig()
	c.Rate, c.Batch, c.Devices = -1, 0, 0
	err := c.Validate()
	for _, want := range []string{"--rate", "--batch", "--devices"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %s", err, want)
		}
	}
}

func TestTopologyNamesListEveryQueue(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = "bench-floor-x"
	queues, exchanges := topologyNames(top)
	has := func(list []string, name string) bool { return slices.Contains(list, name) }
	for _, q := range []string{top.CommandsQueue(), top.ResultsQueue(), top.DeadQueue(), top.DeadNotifyQueue()} {
		if !has(queues, q) {
			t.Errorf("queues %v lack %s", queues, q)
		}
	}
	for _, e := range []string{top.CommandsExchange(), top.ResultsExchange(), top.DeadExchange()} {
		if !has(exchanges, e) {
			t.Errorf("exchanges %v lack %s", exchanges, e)
		}
	}
	for _, n := range append(queues, exchanges...) {
		if !strings.HasPrefix(n, top.Prefix+".") {
			t.Errorf("%s is not the floor's own", n)
		}
	}
}
