package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/barista"
	"cafe/caller"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/mgmt"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// The settings of `cafe scale` (and `cafe up --autoscale`).
var (
	SettingMin           = cli.Setting("min", "CAFE_SCALE_MIN")
	SettingMax           = cli.Setting("max", "CAFE_SCALE_MAX")
	SettingTargetDrain   = cli.Setting("target-drain", "CAFE_SCALE_TARGET_DRAIN")
	SettingQuiet         = cli.Setting("quiet", "CAFE_SCALE_QUIET")
	SettingInterval      = cli.Setting("interval", "CAFE_SCALE_INTERVAL")
	SettingRole          = cli.Setting("role", "CAFE_SCALE_ROLE")
	SettingBinary        = cli.Setting("worker-bin", "CAFE_SCALE_BINARY")
	SettingManagementURL = mgmt.Setting
)

// DefaultManagementURL is RabbitMQ's management API on this machine; with
// no credentials in it, cafe-ops's are filled in from the auth key.
const DefaultManagementURL = mgmt.DefaultURL

// Settings are the supervisor's flags.
type Settings struct {
	Min, Max                     int
	TargetDrain, Quiet, Interval time.Duration
	Role, Binary, ManagementURL  string
}

// Register adds the flags; withRole false leaves out --role and
// --management-url (cafe up sizes baristas only, and its console's
// --management-url is the one; it sets ManagementURL from it).
func (s *Settings) Register(f cli.Flags, withRole bool) {
	f.Int(&s.Min, SettingMin, 1, "fewest workers to keep running (0 or more)")
	f.Int(&s.Max, SettingMax, 4, "most workers to run (at least --min, at least 1)")
	f.Duration(&s.TargetDrain, SettingTargetDrain, 10*time.Second, "scale up at once when the backlog would not drain within this")
	f.Duration(&s.Quiet, SettingQuiet, 30*time.Second, "scale down (one worker at a time) only after this long without a change or pressure")
	f.Duration(&s.Interval, SettingInterval, 2*time.Second, "how often the queue is read")
	f.String(&s.Binary, SettingBinary, "", "the worker binary (default: barista or caller next to this binary, else on $PATH)")
	s.Role = RoleBarista
	if withRole { // standalone cafe scale; in cafe up the console's --management-url is the one
		f.String(&s.ManagementURL, SettingManagementURL, DefaultManagementURL, "RabbitMQ management API, for unacked counts and rates (\"off\": ready counts over AMQP only)")
		f.String(&s.Role, SettingRole, RoleBarista, "which tier to size: barista (by the commands queue) or caller (by the results queue)")
	}
}

// Launch is everything a supervisor runs with: the link it reads the
// queue over and the supervisor itself.
type Launch struct {
	Link       *amqplink.Link
	Supervisor *Supervisor
	// CheckTimeout bounds the first read of the queue, which tells a
	// RabbitMQ that cannot be reached from a slow one (default 10s).
	CheckTimeout time.Duration
}

// Build makes the supervisor of s for the pipeline of brokers, logging in
// to RabbitMQ as cafe-ops.
func (s Settings) Build(brokers cli.Brokers, reg prometheus.Registerer, log *slog.Logger) (*Launch, error) {
	cfg, err := s.config(brokers)
	if err != nil {
		return nil, err
	}
	link, err := amqplink.New(brokers.AMQP(identity.Ops, "cafe-scale"), log.With("link", "amqp"))
	if err != nil {
		return nil, err
	}
	src, err := s.source(brokers, link, log)
	if err != nil {
		return nil, err
	}
	sup, err := New(cfg, src, reg, log)
	if err != nil {
		return nil, err
	}
	return &Launch{Link: link, Supervisor: sup, CheckTimeout: 10 * time.Second}, nil
}

// config is the supervisor's Config from s.
func (s Settings) config(brokers cli.Brokers) (Config, error) {
	cfg := Config{Role: s.Role, Binary: s.Binary, Interval: s.Interval, Set: childBrokers(brokers),
		Policy: Policy{Min: s.Min, Max: s.Max, TargetDrain: s.TargetDrain, Quiet: s.Quiet, Settle: settleFor(s.Interval)}}
	cfg.StopGrace = workerGrace(s.Role) + 5*time.Second
	probe := cfg
	if probe.Binary == "" {
		probe.Binary = s.Role // found below, once the flags are known to be sound
	}
	if err := probe.Validate(); err != nil {
		return cfg, err
	}
	if cfg.Binary == "" {
		b, err := FindBinary(s.Role)
		if err != nil {
			return cfg, err
		}
		cfg.Binary = b
	}
	return cfg, nil
}

// settleFor is the settle time of a supervisor reading every interval:
// two intervals, at least the management API's 5s sampling.
func settleFor(interval time.Duration) time.Duration { return max(5*time.Second, 2*interval) }

// childBrokers are the broker settings the children must share with the
// supervisor, whether they came from flags or the environment.
func childBrokers(b cli.Brokers) map[string]string {
	t := b.Topology()
	return map[string]string{
		amqplink.SettingURL.Env:             b.AMQPURL,
		mqttlink.SettingURL.Env:             b.MQTTURL,
		contracts.SettingPrefix.Env:         t.Prefix,
		contracts.SettingDeliveryLimit.Env:  strconv.Itoa(t.DeliveryLimit),
		contracts.SettingCommandsMaxLen.Env: strconv.Itoa(t.CommandsMaxLength),
		contracts.SettingResultsMaxLen.Env:  strconv.Itoa(t.ResultsMaxLength),
	}
}

// workerGrace is the grace the role's workers take on SIGTERM (their
// setting in this environment, else its default).
func workerGrace(role string) time.Duration {
	env, def := barista.SettingGrace.Env, barista.Defaults().Grace
	if role == RoleCaller {
		env, def = caller.SettingGrace.Env, caller.Defaults().Grace
	}
	if d, err := time.ParseDuration(os.Getenv(env)); err == nil && d > 0 {
		return d
	}
	return def
}

// source reads the role's queue over link and, unless turned off, the
// management API as cafe-ops.
func (s Settings) source(brokers cli.Brokers, link *amqplink.Link, log *slog.Logger) (*QueueSource, error) {
	queue := brokers.Topology().CommandsQueue()
	if s.Role == RoleCaller {
		queue = brokers.Topology().ResultsQueue()
	}
	src := &QueueSource{Link: link, Queue: queue}
	if s.ManagementURL == "off" {
		return src, nil
	}
	m, err := NewManagement(cli.WithRole(s.ManagementURL, DefaultManagementURL, identity.Ops), mgmt.VHostOf(brokers.AMQPURL))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", SettingManagementURL, err)
	}
	src.Management = m
	src.OnFallback = onceLogger(log)
	return src, nil
}

// onceLogger warns about the management API's first failure, and again
// only when the reason changes.
func onceLogger(log *slog.Logger) func(error) {
	last := ""
	return func(err error) {
		if err.Error() != last {
			last = err.Error()
			log.Warn("management API unavailable; sizing by ready counts over AMQP only", "err", err)
		}
	}
}

// Run reads the queue once (to fail fast, saying why, when RabbitMQ
// cannot be reached), then runs the link and the supervisor until ctx is
// done.
func (l *Launch) Run(ctx context.Context) error {
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	linkDone := make(chan struct{})
	go func() { defer close(linkDone); _ = l.Link.Run(lctx) }()
	defer func() { cancel(); <-linkDone }()
	if err := l.check(ctx); err != nil {
		return err
	}
	return l.Supervisor.Run(ctx)
}

// check is the first observation, within a few seconds.
func (l *Launch) check(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, l.CheckTimeout)
	defer cancel()
	// Over AMQP, whatever the management API says: the workers need
	// RabbitMQ itself, and the management API may answer (with a queue
	// an earlier run declared) while the AMQP URL given is wrong.
	var err error
	if q, ok := l.Supervisor.src.(*QueueSource); ok {
		_, err = q.Link.Inspect(cctx, q.Queue)
	} else {
		_, err = l.Supervisor.src.Observe(cctx)
	}
	if err != nil {
		if cause := l.Link.LastError(); cause != nil && errors.Is(err, context.DeadlineExceeded) {
			err = cause
		}
		return fmt.Errorf("cannot read the queue from RabbitMQ: %w (is it running? `task setup` starts it; %s says where)", err, amqplink.SettingURL)
	}
	return nil
}
