package cashier

import (
	"errors"
	"time"

	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/ops"
)

// Config is the cashier's configuration. Zero fields take their values
// from Defaults when the cashier is made (New); each field an operator sets
// has a Setting, named in Validate's errors.
type Config struct {
	Addr           string        // listen address (CAFE_HTTP_ADDR), default :8080
	MaxBodyBytes   int64         // larger bodies get 413; default 1 MiB, at most 1 MiB
	MaxBatch       int           // requests in one batch; default 100
	DefaultTimeout time.Duration // deadline when the app sends no Cafe-Timeout; default 30s
	MaxTimeout     time.Duration // largest Cafe-Timeout accepted; default 10m
	ConfirmTimeout time.Duration // wait for the broker's confirm before answering 503; default 5s
	RetryAfter     time.Duration // Retry-After on 503 and 429; default 1s
	DrainDelay     time.Duration // on shutdown, /readyz fails this long before the listener closes; default 0
	ShutdownGrace  time.Duration // how long requests in flight may finish on shutdown; default 10s
	BodyTimeout    time.Duration // a body must arrive within this of its headers, or 408; default 10s
	MaxConns       int           // connections open at once; more wait to be accepted; default 10000
	// CertFile and KeyFile, both or neither, make the cashier serve HTTPS
	// with that certificate (PEM, leaf first, then any intermediates) and
	// its private key (PEM).
	CertFile, KeyFile string
	// ClientRate and ClientBurst limit a client whose registry entry sets no
	// rate of its own: commands per second, and at once. 0: no limit. Not
	// filled from Defaults (0 is meaningful); the binaries default to
	// Defaults' values.
	ClientRate  float64 `fill:"-"`
	ClientBurst int     `fill:"-"`
	// SessionKey derives the MQTT passwords POST /v1/sessions gives apps
	// (identity.Key.SessionKey of the installation's auth key); without one
	// the cashier answers sessions with 503.
	SessionKey identity.Key
	// SessionMQTTURL is the MQTT broker apps are told to connect to.
	SessionMQTTURL string
	Pprof          bool // serve /debug/pprof/
}

// The cashier's settings.
var (
	SettingAddr           = ops.SettingAddr
	SettingMaxBodyBytes   = contracts.Setting{Flag: "max-body-bytes", Env: "CAFE_MAX_BODY_BYTES"}
	SettingMaxBatch       = contracts.Setting{Flag: "max-batch", Env: "CAFE_MAX_BATCH"}
	SettingDefaultTimeout = contracts.Setting{Flag: "default-timeout", Env: "CAFE_DEFAULT_TIMEOUT"}
	SettingMaxTimeout     = contracts.Setting{Flag: "max-timeout", Env: "CAFE_MAX_TIMEOUT"}
	SettingConfirmTimeout = contracts.Setting{Flag: "confirm-timeout", Env: "CAFE_CONFIRM_TIMEOUT"}
	SettingRetryAfter     = contracts.Setting{Flag: "retry-after", Env: "CAFE_RETRY_AFTER"}
	SettingDrainDelay     = contracts.Setting{Flag: "drain-delay", Env: "CAFE_DRAIN_DELAY"}
	SettingShutdownGrace  = contracts.Setting{Flag: "shutdown-grace", Env: "CAFE_SHUTDOWN_GRACE"}
	SettingBodyTimeout    = contracts.Setting{Flag: "body-timeout", Env: "CAFE_BODY_TIMEOUT"}
	SettingMaxConns       = contracts.Setting{Flag: "max-conns", Env: "CAFE_MAX_CONNS"}
	SettingCertFile       = contracts.Setting{Flag: "http-cert-file", Env: "CAFE_HTTP_CERT_FILE"}
	SettingKeyFile        = contracts.Setting{Flag: "http-key-file", Env: "CAFE_HTTP_KEY_FILE"}
	SettingPprof          = ops.SettingPprof
	SettingClientRate     = contracts.Setting{Flag: "client-rate", Env: "CAFE_CLIENT_RATE"}
	SettingClientBurst    = contracts.Setting{Flag: "client-burst", Env: "CAFE_CLIENT_BURST"}
	SettingSessionMQTTURL = contracts.Setting{Flag: "session-mqtt-url", Env: "CAFE_SESSION_MQTT_URL"}
)

// MaxBatchLimit is the most Config.MaxBatch may be.
const MaxBatchLimit = 1000

// Defaults returns the configuration with every default filled in.
func Defaults() Config {
	return Config{
		Addr:           ":8080",
		MaxBodyBytes:   contracts.MaxBodyBytes,
		MaxBatch:       contracts.DefaultMaxBatch,
		DefaultTimeout: 30 * time.Second,
		MaxTimeout:     contracts.DefaultMaxTimeout,
		ConfirmTimeout: 5 * time.Second,
		RetryAfter:     time.Second,
		ShutdownGrace:  10 * time.Second,
		BodyTimeout:    10 * time.Second,
		MaxConns:       10000, // half of the 20000 open files a process may have here
		SessionMQTTURL: "tcp://127.0.0.1:1883",
		ClientRate:     500,
		ClientBurst:    1000,
	}
}

func (c *Config) fill() { contracts.FillDefaults(c, Defaults()) }

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, SettingAddr.Errorf("is empty: want an address such as :8080"))
	}
	if c.MaxBodyBytes < 64 || c.MaxBodyBytes > contracts.MaxBodyBytes {
		errs = append(errs, SettingMaxBodyBytes.Errorf("%d: want 64 to %d", c.MaxBodyBytes, contracts.MaxBodyBytes))
	}
	if c.MaxBatch < 1 || c.MaxBatch > MaxBatchLimit {
		errs = append(errs, SettingMaxBatch.Errorf("%d: want 1 to %d", c.MaxBatch, MaxBatchLimit))
	}
	if c.MaxTimeout <= 0 || c.MaxTimeout > contracts.MaxTimeout {
		errs = append(errs, SettingMaxTimeout.Errorf("%v: want more than 0 and at most %v (half of RabbitMQ's default consumer timeout)", c.MaxTimeout, contracts.MaxTimeout))
	}
	if c.DefaultTimeout <= 0 || c.DefaultTimeout > c.MaxTimeout {
		errs = append(errs, SettingDefaultTimeout.Errorf("%v: want more than 0 and at most the max timeout %v", c.DefaultTimeout, c.MaxTimeout))
	}
	if c.ConfirmTimeout <= 0 {
		errs = append(errs, SettingConfirmTimeout.Errorf("%v: want more than 0", c.ConfirmTimeout))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, SettingRetryAfter.Errorf("%v: want at least 1s (the header counts whole seconds)", c.RetryAfter))
	}
	if c.DrainDelay < 0 {
		errs = append(errs, SettingDrainDelay.Errorf("%v: want 0 or more", c.DrainDelay))
	}
	if !(c.ClientRate >= 0) {
		errs = append(errs, SettingClientRate.Errorf("%v: want 0 (no limit) or more commands per second", c.ClientRate))
	}
	if c.ClientBurst < 0 {
		errs = append(errs, SettingClientBurst.Errorf("%d: want 0 (the rate) or more", c.ClientBurst))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, SettingShutdownGrace.Errorf("%v: want 0 or more", c.ShutdownGrace))
	}
	if c.BodyTimeout <= 0 {
		errs = append(errs, SettingBodyTimeout.Errorf("%v: want more than 0, such as 10s (a 1 MiB body takes well under a second on a working link)", c.BodyTimeout))
	}
	if c.MaxConns < 1 {
		errs = append(errs, SettingMaxConns.Errorf("%d: want 1 or more, and well below the process's open-files limit (ulimit -n)", c.MaxConns))
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		errs = append(errs, SettingKeyFile.Errorf("is empty but %s is set: give the certificate's private key too, or neither for plain HTTP", SettingCertFile))
	case c.CertFile == "" && c.KeyFile != "":
		errs = append(errs, SettingCertFile.Errorf("is empty but %s is set: give the certificate too, or neither for plain HTTP", SettingKeyFile))
	}
	return errors.Join(errs...)
}
