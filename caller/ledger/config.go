package ledger

import (
	"errors"
	"time"

	"cafe/contracts"
	"cafe/contracts/identity"
)

// Config is the ledger's configuration. Zero fields take their values from
// Defaults when the ledger is made (New).
type Config struct {
	Instance   string        // names this ledger in logs and its consumer tag
	Retention  time.Duration // SettingRetention: how long commands and their history are kept, from when they were first recorded
	BatchSize  int           // SettingBatchSize: events written in one transaction (also the prefetch); a delivery's events are never split, so a batch may go over it by one delivery's
	BatchWait  time.Duration // SettingBatchWait: how long the first event of a batch waits for others
	Grace      time.Duration // SettingGrace: on shutdown, time to write the batch in hand
	RetryEvery time.Duration // how long to wait before writing a refused batch again (1 s; not a setting)
	// WriteTimeout (30 s; not a setting) bounds one attempt to write a
	// batch: a server that accepts and never answers (hung, or gone
	// without closing its connections) fails the attempt, counted and
	// tried again, instead of holding the batch, healthy in name, until
	// TCP gives up.
	WriteTimeout time.Duration
	// CommandPublishers are the AMQP users a dead-lettered command must
	// come from for its -32005 notice to be recorded as its result (the
	// same rule as the caller's).
	CommandPublishers []string
}

// The ledger's settings (CAFE_POSTGRES_URL is records.SettingURL).
var (
	SettingRetention = contracts.Setting{Flag: "ledger-retention", Env: "CAFE_LEDGER_RETENTION"}
	SettingBatchSize = contracts.Setting{Flag: "ledger-batch", Env: "CAFE_LEDGER_BATCH"}
	SettingBatchWait = contracts.Setting{Flag: "ledger-batch-wait", Env: "CAFE_LEDGER_BATCH_WAIT"}
	SettingGrace     = contracts.Setting{Flag: "ledger-grace", Env: "CAFE_LEDGER_GRACE"}
)

// MaxBatch bounds Config.BatchSize (it is the AMQP prefetch too).
const MaxBatch = 10_000

// Defaults returns the configuration with every default filled in.
func Defaults() Config {
	return Config{
		Retention:         7 * 24 * time.Hour,
		BatchSize:         512,
		BatchWait:         20 * time.Millisecond,
		Grace:             10 * time.Second,
		RetryEvery:        time.Second,
		WriteTimeout:      30 * time.Second,
		CommandPublishers: identity.DefaultCommandPublishers(),
	}
}

// NewInstance returns a fresh random instance name, l-<8 hex digits>.
func NewInstance() string { return contracts.NewName("l-") }

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
		errs = append(errs, errors.New("ledger instance "+contracts.Clip(c.Instance)+": want 1 to 64 characters from A-Z a-z 0-9 . _ : -"))
	}
	if c.Retention < time.Minute {
		errs = append(errs, SettingRetention.Errorf("%v: want at least 1m", c.Retention))
	}
	if c.BatchSize < 1 || c.BatchSize > MaxBatch {
		errs = append(errs, SettingBatchSize.Errorf("%d: want 1 to %d", c.BatchSize, MaxBatch))
	}
	if c.BatchWait < 0 || c.BatchWait > time.Second {
		errs = append(errs, SettingBatchWait.Errorf("%v: want 0 to 1s", c.BatchWait))
	}
	if c.Grace < 0 {
		errs = append(errs, SettingGrace.Errorf("%v: want 0 or more", c.Grace))
	}
	if c.RetryEvery <= 0 {
		errs = append(errs, errors.New("ledger retry interval: want more than 0"))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, errors.New("ledger write timeout: want more than 0"))
	}
	errs = append(errs, identity.ValidPublishers(c.CommandPublishers, identity.SettingCommandPublishers, identity.DefaultCommandPublishers()))
	return errors.Join(errs...)
}
