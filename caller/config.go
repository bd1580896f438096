package caller

import (
	"errors"
	"time"

	"cafe/contracts"
	"cafe/contracts/identity"
)

// Config is the caller's configuration. Zero fields take their values from
// Defaults when the caller is made (New); each field an operator sets has
// a Setting, named in Validate's errors.
type Config struct {
	Instance       string        // names this caller in logs, its consumer tag and MQTT client id
	Concurrency    int           // SettingConcurrency: results delivered at once, and the prefetch
	Grace          time.Duration // SettingGrace: on shutdown, time to finish deliveries in hand
	PublishTimeout time.Duration // SettingPublishTimeout: wait for the MQTT broker's PUBACK
	WaitMQTT       time.Duration // SettingWaitMQTT: hold a result while the MQTT broker is down, up to this
	// ResultPublishers (identity.SettingResultPublishers) are the AMQP
	// users a result may come from; CommandPublishers
	// (identity.SettingCommandPublishers) those a dead-lettered command
	// must come from for its app to be told.
	ResultPublishers  []string
	CommandPublishers []string
}

// The caller's settings.
var (
	SettingConcurrency    = contracts.Setting{Flag: "caller-concurrency", Env: "CAFE_CALLER_CONCURRENCY"}
	SettingGrace          = contracts.Setting{Flag: "caller-grace", Env: "CAFE_CALLER_GRACE"}
	SettingPublishTimeout = contracts.Setting{Flag: "publish-timeout", Env: "CAFE_CALLER_PUBLISH_TIMEOUT"}
	SettingWaitMQTT       = contracts.Setting{Flag: "wait-mqtt", Env: "CAFE_CALLER_WAIT_MQTT"}
)

// MaxConcurrency bounds Config.Concurrency (it is also the AMQP prefetch).
const MaxConcurrency = 65535

// MaxWaitMQTT bounds Config.WaitMQTT: RabbitMQ closes a channel that holds
// a delivery unacked for its consumer timeout (30 minutes by default).
const MaxWaitMQTT = 15 * time.Minute

// Defaults returns the configuration with every default filled in. The
// instance has no fixed default: each caller takes a fresh one
// (NewInstance), so any number run side by side.
func Defaults() Config {
	return Config{
		Concurrency:    256,
		Grace:          10 * time.Second,
		PublishTimeout: 10 * time.Second,
		WaitMQTT:       10 * time.Minute,

		ResultPublishers:  identity.DefaultResultPublishers(),
		CommandPublishers: identity.DefaultCommandPublishers(),
	}
}

// NewInstance returns a fresh random instance name, c-<8 hex digits>.
func NewInstance() string { return contracts.NewName("c-") }

func (c *Config) fill() {
	contracts.FillDefaults(c, Defaults())
	if c.Instance == "" {
		c.Instance = NewInstance()
	}
}

// Validate reports every problem with c (after defaults are filled).
func (c Config) Validate() error {
	var errs []error
	if !contracts.ValidRoute(c.Instance) {
		errs = append(errs, errors.New("caller instance "+contracts.Clip(c.Instance)+": want 1 to 64 characters from A-Z a-z 0-9 . _ : -"))
	}
	if c.Concurrency < 1 || c.Concurrency > MaxConcurrency {
		errs = append(errs, SettingConcurrency.Errorf("%d: want 1 to %d", c.Concurrency, MaxConcurrency))
	}
	if c.Grace < 0 {
		errs = append(errs, SettingGrace.Errorf("%v: want 0 or more", c.Grace))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, SettingPublishTimeout.Errorf("%v: want more than 0", c.PublishTimeout))
	}
	if c.WaitMQTT <= 0 || c.WaitMQTT > MaxWaitMQTT {
		errs = append(errs, SettingWaitMQTT.Errorf("%v: want more than 0 and at most %v (half of RabbitMQ's default consumer timeout)", c.WaitMQTT, MaxWaitMQTT))
	}
	errs = append(errs,
		identity.ValidPublishers(c.ResultPublishers, identity.SettingResultPublishers, identity.DefaultResultPublishers()),
		identity.ValidPublishers(c.CommandPublishers, identity.SettingCommandPublishers, identity.DefaultCommandPublishers()))
	return errors.Join(errs...)
}
