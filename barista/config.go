package barista

import (
	"errors"
	"time"

	"cafe/contracts"
	"cafe/contracts/identity"
)

// Config is the barista's configuration. Zero fields take their values
// from Defaults when the barista is made (New); each field an operator sets
// has a Setting, named in Validate's errors.
type Config struct {
	Route         string        // SettingRoute: this barista's route level in command topics
	Concurrency   int           // SettingConcurrency: commands handled at once, and the prefetch
	Grace         time.Duration // SettingGrace: on shutdown, time to finish the commands in hand
	ResultTimeout time.Duration // SettingResultTimeout: how long a result may wait for RabbitMQ (confirm, resource alarm, full queue)
	MaxReplyBytes int           // SettingMaxReplyBytes: larger device replies become bad-reply errors
	MaxTimeout    time.Duration // SettingMaxTimeout: no command is worked on longer than this, whatever its deadline
	Publishers    []string      // identity.SettingCommandPublishers: the AMQP users a command may come from
	Breaker       BreakerConfig
}

// BreakerConfig tunes the per-device circuit breakers.
type BreakerConfig struct {
	Failures int           // SettingBreakerFailures: consecutive transport failures that open a device's breaker
	OpenFor  time.Duration // SettingBreakerOpen: how long it stays open before one trial command
	IdleTTL  time.Duration // a closed breaker unused this long is forgotten
}

// The barista's settings.
var (
	SettingRoute           = contracts.Setting{Flag: "route", Env: "CAFE_BARISTA_ROUTE"}
	SettingConcurrency     = contracts.Setting{Flag: "concurrency", Env: "CAFE_BARISTA_CONCURRENCY"}
	SettingGrace           = contracts.Setting{Flag: "grace", Env: "CAFE_BARISTA_GRACE"}
	SettingResultTimeout   = contracts.Setting{Flag: "result-timeout", Env: "CAFE_BARISTA_RESULT_TIMEOUT"}
	SettingMaxReplyBytes   = contracts.Setting{Flag: "max-reply-bytes", Env: "CAFE_MAX_REPLY_BYTES"}
	SettingMaxTimeout      = contracts.Setting{Flag: "barista-max-timeout", Env: "CAFE_BARISTA_MAX_TIMEOUT"}
	SettingBreakerFailures = contracts.Setting{Flag: "breaker-failures", Env: "CAFE_BREAKER_FAILURES"}
	SettingBreakerOpen     = contracts.Setting{Flag: "breaker-open", Env: "CAFE_BREAKER_OPEN"}
)

// MaxConcurrency bounds Config.Concurrency (it is also the AMQP prefetch,
// a 16-bit field).
const MaxConcurrency = 65535

// Defaults returns the configuration with every default filled in. The
// route has no fixed default: each barista takes a fresh one (NewRoute),
// so any number run side by side.
func Defaults() Config {
	return Config{
		Concurrency:   256,
		Grace:         10 * time.Second,
		ResultTimeout: time.Minute,
		MaxReplyBytes: contracts.DefaultMaxReplyBytes,
		MaxTimeout:    contracts.DefaultMaxTimeout,
		Publishers:    identity.DefaultCommandPublishers(),
		Breaker:       BreakerConfig{Failures: 5, OpenFor: 30 * time.Second, IdleTTL: 10 * time.Minute},
	}
}

// NewRoute returns a fresh random route, b-<8 hex digits>.
func NewRoute() string { return contracts.NewName("b-") }

func (c *Config) fill() {
	contracts.FillDefaults(c, Defaults())
	if c.Route == "" {
		c.Route = NewRoute()
	}
}

// Validate reports every problem with c (after defaults are filled).
func (c Config) Validate() error {
	var errs []error
	if !contracts.ValidRoute(c.Route) {
		errs = append(errs, SettingRoute.Errorf("%q: want 1 to %d characters from A-Z a-z 0-9 . _ : -", contracts.Clip(c.Route), contracts.MaxRouteLen))
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		errs = append(errs, SettingConcurrency.Errorf("%d: want 1 to %d", c.Concurrency, MaxConcurrency))
	}
	if c.Grace < 0 {
		errs = append(errs, SettingGrace.Errorf("%v: want 0 or more", c.Grace))
	}
	if c.ResultTimeout <= 0 {
		errs = append(errs, SettingResultTimeout.Errorf("%v: want more than 0", c.ResultTimeout))
	}
	if c.MaxReplyBytes < 1 || c.MaxReplyBytes > contracts.MaxBodyBytes {
		errs = append(errs, SettingMaxReplyBytes.Errorf("%d: want 1 to %d", c.MaxReplyBytes, contracts.MaxBodyBytes))
	}
	if c.MaxTimeout <= 0 || c.MaxTimeout > contracts.MaxTimeout {
		errs = append(errs, SettingMaxTimeout.Errorf("%v: want more than 0 and at most %v", c.MaxTimeout, contracts.MaxTimeout))
	}
	errs = append(errs, identity.ValidPublishers(c.Publishers, identity.SettingCommandPublishers, identity.DefaultCommandPublishers()))
	if c.Breaker.Failures < 0 {
		errs = append(errs, SettingBreakerFailures.Errorf("%d: want 0 (default) or more", c.Breaker.Failures))
	}
	if c.Breaker.OpenFor < 0 || c.Breaker.IdleTTL < 0 {
		errs = append(errs, SettingBreakerOpen.Errorf("%v: want 0 (default) or more", c.Breaker.OpenFor))
	}
	return errors.Join(errs...)
}
