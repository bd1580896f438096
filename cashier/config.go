package cashier

import (
	"errors"
	"fmt"
	"time"

	"cafe/contracts"
)

// Config is the cashier's configuration. Zero fields take the defaults
// below (see Defaults); Validate says what is wrong with the rest.
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
	Pprof          bool          // serve /debug/pprof/
}

// MaxBodyLimit is the most Config.MaxBodyBytes may be: these are device
// commands, not uploads.
const MaxBodyLimit = 1 << 20

// Defaults returns the configuration with every default filled in.
func Defaults() Config {
	return Config{
		Addr:           ":8080",
		MaxBodyBytes:   MaxBodyLimit,
		MaxBatch:       contracts.DefaultMaxBatch,
		DefaultTimeout: 30 * time.Second,
		MaxTimeout:     10 * time.Minute,
		ConfirmTimeout: 5 * time.Second,
		RetryAfter:     time.Second,
		ShutdownGrace:  10 * time.Second,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("http address is empty (CAFE_HTTP_ADDR, e.g. :8080)"))
	}
	if c.MaxBodyBytes < 64 || c.MaxBodyBytes > MaxBodyLimit {
		errs = append(errs, fmt.Errorf("max body %d bytes: want 64 to %d", c.MaxBodyBytes, MaxBodyLimit))
	}
	if c.MaxBatch < 1 || c.MaxBatch > 1000 {
		errs = append(errs, fmt.Errorf("max batch %d: want 1 to 1000", c.MaxBatch))
	}
	// The deadline bounds the barista's wait for a device, and that wait
	// must stay far below RabbitMQ's consumer ack timeout (30 min default).
	if c.MaxTimeout <= 0 || c.MaxTimeout > 15*time.Minute {
		errs = append(errs, fmt.Errorf("max timeout %v: want more than 0 and at most 15m (half of RabbitMQ's default consumer timeout)", c.MaxTimeout))
	}
	if c.DefaultTimeout <= 0 || c.DefaultTimeout > c.MaxTimeout {
		errs = append(errs, fmt.Errorf("default timeout %v: want more than 0 and at most the max timeout %v", c.DefaultTimeout, c.MaxTimeout))
	}
	if c.ConfirmTimeout <= 0 {
		errs = append(errs, fmt.Errorf("confirm timeout %v: want more than 0", c.ConfirmTimeout))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, fmt.Errorf("retry-after %v: want at least 1s (the header counts whole seconds)", c.RetryAfter))
	}
	if c.DrainDelay < 0 || c.ShutdownGrace < 0 {
		errs = append(errs, errors.New("drain delay and shutdown grace: want 0 or more"))
	}
	return errors.Join(errs...)
}
