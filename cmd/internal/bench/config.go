package bench

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/contracts"
)

// Defaults of the flags that have one.
const (
	DefaultRate          = 100.0
	DefaultKneeStart     = 200.0
	DefaultDuration      = 10 * time.Second
	DefaultDevices       = 10
	DefaultMethod        = "echo"
	DefaultPayloadBytes  = 200
	DefaultBatch         = 1
	DefaultHTTPWorkers   = 128
	DefaultTimeout       = 10 * time.Second
	DefaultDrain         = 15 * time.Second
	DefaultKneeStep      = 5 * time.Second
	DefaultKneeFactor    = 1.25
	DefaultKneeP99       = 100 * time.Millisecond
	DefaultKneeMaxSteps  = 30
	DefaultFloorDuration = 3 * time.Second
	DefaultLoneCount     = 200

	// FloorInFlight is how many messages the throughput floors keep in
	// flight: the prefetch and concurrency of a barista and a caller.
	FloorInFlight = 256
	// MaxBodyBytes is the cashier's largest body by default
	// (CAFE_MAX_BODY_BYTES); a batch must fit in it.
	MaxBodyBytes = 1 << 20
	// MaxBatch is the cashier's largest batch by default (CAFE_MAX_BATCH).
	MaxBatch = contracts.DefaultMaxBatch
)

// Config is one invocation of the bench. Exactly one of Rate (open loop)
// and Concurrency (closed loop) is more than 0; Count, when more than 0,
// replaces Duration.
type Config struct {
	URL      string // the cashier's base URL
	Token    string // the app's bearer token
	ClientID string // the app's client id: results arrive on clients/{ClientID}/results
	MQTTURL  string
	AMQPURL  string // for --floor only

	Rate          float64       // commands per second, open loop
	Concurrency   int           // commands outstanding at once, closed loop
	Duration      time.Duration // how long to send (after Warmup is included in it)
	Count         int           // how many commands to send, instead of Duration
	Warmup        time.Duration // the first Warmup of sending is left out of the statistics
	Devices       int
	DeviceLatency time.Duration
	Method        string
	PayloadBytes  int // each request is padded to about this many bytes
	Batch         int // requests per HTTP call
	HTTPWorkers   int // goroutines and connections that submit
	Timeout       time.Duration
	Drain         time.Duration // after the last send, how long to wait for the results still due
	CashierOnly   bool          // only the 202s count; no fleet, no results
	Floor         bool
	FloorDuration time.Duration // each throughput floor runs this long
	LoneCount     int           // commands (and floor round trips) sent one at a time
	Knee          bool
	KneeStep      time.Duration
	KneeFactor    float64
	KneeP99       time.Duration
	KneeMaxSteps  int
	Scrape        []string // [name=]URL of /metrics endpoints
	Out           string   // directory for the JSON and the pictures

	Stdout   io.Writer // the report table
	Progress io.Writer // one line per second while it runs; nil: none
}

// Defaults is the configuration of `cafe bench` without flags (URL, token,
// client and output directory aside).
func Defaults() Config {
	return Config{
		URL:           "http://127.0.0.1:8080",
		MQTTURL:       "tcp://127.0.0.1:1883",
		AMQPURL:       "amqp://guest:guest@127.0.0.1:5672/",
		Rate:          DefaultRate,
		Duration:      DefaultDuration,
		Devices:       DefaultDevices,
		Method:        DefaultMethod,
		PayloadBytes:  DefaultPayloadBytes,
		Batch:         DefaultBatch,
		HTTPWorkers:   DefaultHTTPWorkers,
		Timeout:       DefaultTimeout,
		Drain:         DefaultDrain,
		FloorDuration: DefaultFloorDuration,
		LoneCount:     DefaultLoneCount,
		KneeStep:      DefaultKneeStep,
		KneeFactor:    DefaultKneeFactor,
		KneeP99:       DefaultKneeP99,
		KneeMaxSteps:  DefaultKneeMaxSteps,
	}
}

// OpenLoop reports whether commands are sent on a schedule (Rate) rather
// than as earlier ones finish (Concurrency).
func (c Config) OpenLoop() bool { return c.Concurrency == 0 }

// Validate reports everything wrong with c, each with the flag to fix.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("--url %q: want the cashier's base URL, like http://127.0.0.1:8080", c.URL)
	}
	if c.Token == "" {
		bad("no token: pass --token (or CAFE_TOKEN), or run `cafe up` once to create the demo client")
	}
	if !c.CashierOnly && !contracts.ValidClientID(c.ClientID) {
		bad("--client %q: want the client id your token belongs to (results arrive on clients/{client}/results)", c.ClientID)
	}
	switch {
	case c.Rate != 0 && c.Concurrency != 0:
		bad("--rate %v and --concurrency %d: give one (open loop at a rate, or closed loop at a concurrency), not both", c.Rate, c.Concurrency)
	case c.Concurrency < 0 || c.Concurrency > 100_000:
		bad("--concurrency %d: want 1 to 100000 commands in flight", c.Concurrency)
	case c.Concurrency == 0 && !(c.Rate > 0 && c.Rate <= 1e6): // also rejects NaN
		bad("--rate %v: want more than 0 and at most 1000000 commands per second", c.Rate)
	}
	if c.Count < 0 {
		bad("--count %d: want 0 (use --duration) or more", c.Count)
	}
	if c.Count == 0 && (c.Duration <= 0 || c.Duration > 24*time.Hour) {
		bad("--duration %v: want more than 0 and at most 24h", c.Duration)
	}
	if c.Warmup < 0 || (c.Count == 0 && c.Duration > 0 && c.Warmup >= c.Duration) {
		bad("--warmup %v: want 0 or more, and less than --duration %v", c.Warmup, c.Duration)
	}
	if c.Devices < 1 || c.Devices > devicesim.MaxCount {
		bad("--devices %d: want 1 to %d", c.Devices, devicesim.MaxCount)
	}
	if c.DeviceLatency < 0 {
		bad("--device-latency %v: want 0 or more", c.DeviceLatency)
	}
	if c.Method == "" || len(c.Method) > contracts.MaxMethodLen || strings.HasPrefix(c.Method, "rpc.") {
		bad("--method %q: want a JSON-RPC method name, 1 to %d bytes, not starting with rpc.", c.Method, contracts.MaxMethodLen)
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		bad("--batch %d: want 1 to %d requests per HTTP call (the cashier's CAFE_MAX_BATCH)", c.Batch, MaxBatch)
	}
	if min := minRequestBytes(c.Method); c.PayloadBytes < min {
		bad("--payload-bytes %d: want at least %d, the size of a request with method %q and no padding", c.PayloadBytes, min, c.Method)
	} else if c.Batch >= 1 && c.PayloadBytes*c.Batch+c.Batch+2 > MaxBodyBytes {
		bad("--payload-bytes %d × --batch %d: the body would exceed the cashier's %d-byte limit (CAFE_MAX_BODY_BYTES)", c.PayloadBytes, c.Batch, MaxBodyBytes)
	}
	if c.HTTPWorkers < 1 || c.HTTPWorkers > 10_000 {
		bad("--http-workers %d: want 1 to 10000", c.HTTPWorkers)
	}
	if c.Timeout <= 0 || c.Timeout > 10*time.Minute {
		bad("--timeout %v: want more than 0 and at most 10m (the command's Cafe-Timeout)", c.Timeout)
	}
	if c.Drain < 0 {
		bad("--drain %v: want 0 or more", c.Drain)
	}
	if c.Floor && (c.FloorDuration <= 0 || c.LoneCount < 1) {
		bad("--floor-duration %v and --lone-count %d: want more than 0", c.FloorDuration, c.LoneCount)
	}
	if c.Knee {
		if !c.OpenLoop() {
			bad("--knee steps the open-loop rate up: give --rate (its first step), not --concurrency")
		}
		if c.KneeStep <= 0 || c.Warmup >= c.KneeStep {
			bad("--knee-step %v: want more than 0 and more than --warmup %v", c.KneeStep, c.Warmup)
		}
		if !(c.KneeFactor > 1 && c.KneeFactor <= 10) {
			bad("--knee-factor %v: want more than 1 and at most 10", c.KneeFactor)
		}
		if c.KneeP99 <= 0 {
			bad("--knee-p99 %v: want more than 0", c.KneeP99)
		}
		if c.KneeMaxSteps < 1 {
			bad("--knee-max-steps %d: want at least 1", c.KneeMaxSteps)
		}
	}
	if c.Floor {
		if u, err := url.Parse(c.AMQPURL); err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			bad("--amqp-url %q: want amqp://user:password@host:port/vhost (the floor publishes to RabbitMQ directly)", c.AMQPURL)
		}
	}
	if !c.CashierOnly || c.Floor {
		if u, err := url.Parse(c.MQTTURL); err != nil || u.Host == "" {
			bad("--mqtt-url %q: want tcp://host:port", c.MQTTURL)
		}
	}
	for _, s := range c.Scrape {
		if _, _, err := parseScrape(s); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Out == "" {
		bad("--out: want a directory for the JSON report and the pictures")
	}
	return errors.Join(errs...)
}
