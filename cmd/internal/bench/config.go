package bench

import (
	"crypto/tls"
	"io"
	"time"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
	"cafe/contracts/records"
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
// replaces Duration. Each field an operator sets has a Setting, named in
// Validate's errors.
type Config struct {
	URL      string        // SettingURL: the cashier's base URL
	Token    string        // SettingToken: the app's bearer token
	ClientID string        // SettingClientID: the app's client id: results arrive on clients/{ClientID}/results
	MQTTURL  string        // SettingMQTTURL
	AMQPURL  string        // SettingAMQPURL: for --floor only
	CAFile   string        // SettingCAFile: a CA trusted for an https:// URL, besides the system's
	MQTTTLS  linktls.Files // for an ssl:// MQTTURL (mqttlink.SettingsTLS)
	AMQPTLS  linktls.Files // for an amqps:// AMQPURL (amqplink.SettingsTLS)

	Rate          float64       // SettingRate: commands per second, open loop
	Concurrency   int           // SettingConcurrency: commands outstanding at once, closed loop
	Duration      time.Duration // SettingDuration: how long to send (after Warmup is included in it)
	Count         int           // SettingCount: how many commands to send, instead of Duration
	Warmup        time.Duration // SettingWarmup: the first Warmup of sending is left out of the statistics
	Devices       int           // SettingDevices
	DeviceLatency time.Duration // SettingDeviceLatency
	Method        string        // SettingMethod
	PayloadBytes  int           // SettingPayloadBytes: each request is padded to about this many bytes
	Batch         int           // SettingBatch: requests per HTTP call
	HTTPWorkers   int           // SettingHTTPWorkers: goroutines and connections that submit
	Timeout       time.Duration // SettingTimeout
	Drain         time.Duration // SettingDrain: after the last send, how long to wait for the results still due
	CashierOnly   bool          // SettingCashierOnly: only the 202s count; no fleet, no results
	Floor         bool          // SettingFloor
	FloorDuration time.Duration // SettingFloorDuration: each throughput floor runs this long
	LoneCount     int           // SettingLoneCount: commands (and floor round trips) sent one at a time
	Knee          bool          // SettingKnee
	KneeStep      time.Duration // SettingKneeStep
	KneeFactor    float64       // SettingKneeFactor
	KneeP99       time.Duration // SettingKneeP99
	KneeMaxSteps  int           // SettingKneeMaxSteps
	Scrape        []string      // SettingScrape: [name=]URL of /metrics endpoints
	Against       []string      // SettingAgainst: NAME=URL of other implementations to compare with (Compare)
	PostgresURL   string        // SettingPostgresURL: the ledger's database, read for rows and bytes per command; "" not read
	Out           string        // SettingOut: directory for the JSON and the pictures

	Stdout   io.Writer // the report table
	Progress io.Writer // one line per second while it runs; nil: none

	// RegisterDevices, if set, registers the bench's simulated devices
	// before they connect (the cashier refuses commands to unregistered
	// devices, the broker refuses their logins) and returns each one's
	// secret; unregister removes them again at the end.
	RegisterDevices func(ids []string) (secret func(id string) string, unregister func() error, err error)
}

// The bench's settings. Where the pipeline is and whose results to read
// are shared with the rest of cafe (`cafe order`, the services) and have
// environment variables; the rest describe one invocation's load and are
// flags only.
var (
	SettingURL      = contracts.Setting{Flag: "url", Env: "CAFE_URL"}
	SettingToken    = contracts.Setting{Flag: "token", Env: "CAFE_TOKEN"}
	SettingClientID = contracts.Setting{Flag: "client", Env: "CAFE_CLIENT_ID"}
	SettingMQTTURL  = mqttlink.SettingURL
	SettingAMQPURL  = amqplink.SettingURL
	SettingCAFile   = contracts.Setting{Flag: "ca-file", Env: "CAFE_CA_FILE"}

	SettingRate          = contracts.Setting{Flag: "rate"}
	SettingConcurrency   = contracts.Setting{Flag: "concurrency"}
	SettingDuration      = contracts.Setting{Flag: "duration"}
	SettingCount         = contracts.Setting{Flag: "count"}
	SettingWarmup        = contracts.Setting{Flag: "warmup"}
	SettingDevices       = contracts.Setting{Flag: "devices"}
	SettingDeviceLatency = contracts.Setting{Flag: "device-latency"}
	SettingMethod        = contracts.Setting{Flag: "method"}
	SettingPayloadBytes  = contracts.Setting{Flag: "payload-bytes"}
	SettingBatch         = contracts.Setting{Flag: "batch"}
	SettingHTTPWorkers   = contracts.Setting{Flag: "http-workers"}
	SettingTimeout       = contracts.Setting{Flag: "timeout"}
	SettingDrain         = contracts.Setting{Flag: "drain"}
	SettingCashierOnly   = contracts.Setting{Flag: "cashier-only"}
	SettingFloor         = contracts.Setting{Flag: "floor"}
	SettingFloorDuration = contracts.Setting{Flag: "floor-duration"}
	SettingLoneCount     = contracts.Setting{Flag: "lone-count"}
	SettingKnee          = contracts.Setting{Flag: "knee"}
	SettingKneeStep      = contracts.Setting{Flag: "knee-step"}
	SettingKneeFactor    = contracts.Setting{Flag: "knee-factor"}
	SettingKneeP99       = contracts.Setting{Flag: "knee-p99"}
	SettingKneeMaxSteps  = contracts.Setting{Flag: "knee-max-steps"}
	SettingScrape        = contracts.Setting{Flag: "scrape"}
	SettingPostgresURL   = records.SettingURL
	SettingOut           = contracts.Setting{Flag: "out"}
)

// Defaults is the configuration of `cafe bench` without flags (URL, token,
// client and output directory aside).
func Defaults() Config {
	return Config{
		URL:           "http://127.0.0.1:8080",
		MQTTURL:       "tcp://127.0.0.1:1883",
		AMQPURL:       amqplink.DefaultURL,
		PostgresURL:   records.DefaultURL,
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

// httpsTrust is the TLS configuration of the bench's HTTP client: the
// system's trust store plus CAFile; nil without CAFile.
func (c Config) httpsTrust() (*tls.Config, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	pool, err := linktls.SystemPlus(c.CAFile)
	if err != nil {
		return nil, SettingCAFile.Errorf("%s: %v; want a readable PEM file of the CA that signed the cashier's certificate", c.CAFile, err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
