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

func TestValidateNamesTheSettingToFix(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		setting contracts.Setting // the setting the error must name
		want    string            // and its text
	}{
		{"zero rate", func(c *Config) { c.Rate = 0 }, SettingRate, "--rate 0: want more than 0"},
		{"negative rate", func(c *Config) { c.Rate = -5 }, SettingRate, "--rate -5"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, SettingRate, "--rate NaN"},
		{"huge rate", func(c *Config) { c.Rate = 2e6 }, SettingRate, "at most 1000000"},
		{"rate and concurrency", func(c *Config) { c.Concurrency = 8 }, SettingRate, "--rate 100 and --concurrency 8: give one"},
		{"negative concurrency", func(c *Config) { c.Rate, c.Concurrency = 0, -1 }, SettingConcurrency, "--concurrency -1"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, SettingDuration, "--duration 0s: want more than 0"},
		{"negative duration", func(c *Config) { c.Duration = -time.Second }, SettingDuration, "--duration -1s"},
		{"negative count", func(c *Config) { c.Count = -3 }, SettingCount, "--count -3: want 0 (use --duration) or more"},
		{"warmup as long as the run", func(c *Config) { c.Warmup = c.Duration }, SettingWarmup, "--warmup 10s"},
		{"no devices", func(c *Config) { c.Devices = 0 }, SettingDevices, "--devices 0"},
		{"negative device latency", func(c *Config) { c.DeviceLatency = -time.Millisecond }, SettingDeviceLatency, "--device-latency -1ms"},
		{"payload too small", func(c *Config) { c.PayloadBytes = 10 }, SettingPayloadBytes, "--payload-bytes 10: want at least"},
		{"payload too large for a body", func(c *Config) { c.PayloadBytes, c.Batch = 20_000, 100 }, SettingPayloadBytes, "--payload-bytes 20000 × --batch 100: the body would exceed the cashier's"},
		{"batch zero", func(c *Config) { c.Batch = 0 }, SettingBatch, "--batch 0"},
		{"batch over the cashier's limit", func(c *Config) { c.Batch = 101 }, SettingBatch, "--batch 101"},
		{"no http workers", func(c *Config) { c.HTTPWorkers = 0 }, SettingHTTPWorkers, "--http-workers 0"},
		{"reserved method", func(c *Config) { c.Method = "rpc.x" }, SettingMethod, "--method"},
		{"no timeout", func(c *Config) { c.Timeout = 0 }, SettingTimeout, "--timeout 0s"},
		{"bad url", func(c *Config) { c.URL = "127.0.0.1:8080" }, SettingURL, `--url (CAFE_URL) "127.0.0.1:8080"`},
		{"no token", func(c *Config) { c.Token = "" }, SettingToken, "--token (CAFE_TOKEN) not given"},
		{"bad client", func(c *Config) { c.ClientID = "a/b" }, SettingClientID, `--client (CAFE_CLIENT_ID) "a/b"`},
		{"knee in closed loop", func(c *Config) { c.Knee, c.Rate, c.Concurrency = true, 0, 4 }, SettingKnee, "--knee steps the open-loop rate up: give --rate"},
		{"knee factor 1", func(c *Config) { c.Knee, c.KneeFactor = true, 1 }, SettingKneeFactor, "--knee-factor 1"},
		{"floor without lone commands", func(c *Config) { c.Floor, c.LoneCount = true, 0 }, SettingFloorDuration, "--floor-duration 3s and --lone-count 0"},
		{"bad scrape", func(c *Config) { c.Scrape = []string{"cafe=localhost:8080/metrics"} }, SettingScrape, "--scrape"},
		{"bad amqp url with floor", func(c *Config) { c.Floor, c.AMQPURL = true, "http://x" }, SettingAMQPURL, `--amqp-url (CAFE_AMQP_URL) "http://x"`},
		{"bad mqtt url", func(c *Config) { c.MQTTURL = "1883" }, SettingMQTTURL, `--mqtt-url (CAFE_MQTT_URL) "1883"`},
		{"no out", func(c *Config) { c.Out = "" }, SettingOut, "--out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("no error, want one naming %v", tt.setting)
			}
			if got := contracts.InvalidSettings(err); !slices.Equal(got, []contracts.Setting{tt.setting}) {
				t.Errorf("error %q names %v, want %v alone", err, got, tt.setting)
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
	want := []contracts.Setting{SettingRate, SettingDevices, SettingBatch}
	if got := contracts.InvalidSettings(c.Validate()); !slices.Equal(got, want) {
		t.Errorf("Validate names %v, want %v", got, want)
	}
}
