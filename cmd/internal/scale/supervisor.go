package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Roles the supervisor can size, and the queue each is sized by.
const (
	RoleBarista = "barista" // by the commands queue
	RoleCaller  = "caller"  // by the results queue
)

// Config is what a Supervisor is set up with.
type Config struct {
	Role     string            // RoleBarista or RoleCaller
	Binary   string            // the worker binary to run
	Env      []string          // the children's environment (nil: this process's)
	Set      map[string]string // variables set for every child, over Env (the brokers' settings)
	Policy   Policy
	Interval time.Duration // between observations
	// StopGrace is how long a child may take to exit after SIGTERM before
	// it is killed: its own grace (CAFE_BARISTA_GRACE) and a margin.
	StopGrace time.Duration
}

// Validate says what is wrong with c, in the words of the flags.
func (c Config) Validate() error {
	var errs []error
	p := c.Policy
	if c.Role != RoleBarista && c.Role != RoleCaller {
		errs = append(errs, fmt.Errorf("--role %q: want barista or caller", c.Role))
	}
	if p.Min < 0 {
		errs = append(errs, fmt.Errorf("--min %d: want 0 or more", p.Min))
	}
	if p.Max < 1 {
		errs = append(errs, fmt.Errorf("--max %d: want 1 or more", p.Max))
	}
	if p.Min > p.Max {
		errs = append(errs, fmt.Errorf("--min %d is above --max %d", p.Min, p.Max))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--target-drain", p.TargetDrain}, {"--quiet", p.Quiet}, {"--interval", c.Interval}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: want a positive duration such as 10s", d.flag, d.v))
		}
	}
	if c.Binary == "" {
		errs = append(errs, errors.New("no worker binary"))
	}
	return errors.Join(errs...)
}

// Supervisor runs and sizes one tier of workers.
type Supervisor struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	metrics *metrics
	state   State
	exited  chan *child
	quit    chan struct{} // closed when Run returns

	mu       sync.Mutex // guards children, which Run changes and PIDs reads
	children []*child
}

// New makes a supervisor; nothing runs before Run.
func New(cfg Config, src Source, reg prometheus.Registerer, log *slog.Logger) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ()
	}
	m, err := newMetrics(reg, cfg.Role)
	if err != nil {
		return nil, err
	}
	return &Supervisor{cfg: cfg, src: src, log: log.With("tier", cfg.Role), metrics: m, exited: make(chan *child), quit: make(chan struct{})}, nil
}

// Run sizes the tier until ctx is done, then stops every child (SIGTERM,
// each finishing or handing back what it holds) and waits for them.
func (s *Supervisor) Run(ctx context.Context) error {
	defer close(s.quit)
	defer s.stopAll()
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	s.step(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-s.exited:
			s.reap(c)
		case <-tick.C:
			s.step(ctx)
		}
	}
}

// step observes the queue, decides and acts.
func (s *Supervisor) step(ctx context.Context) {
	s.state.Running = s.running()
	octx, cancel := context.WithTimeout(ctx, s.cfg.Interval+5*time.Second)
	o, err := s.src.Observe(octx)
	cancel()
	if err != nil {
		s.log.Warn("cannot read the queue; keeping the count", "err", err, "running", s.state.Running)
		s.ensure(max(s.state.Running, s.cfg.Policy.Min), "queue unreadable; at least the minimum")
		return
	}
	s.learn(o)
	now := time.Now()
	d := Decide(s.cfg.Policy, s.state, o, now)
	if d.Pressure {
		s.state.LastPressure = now
	}
	s.metrics.observe(o, d, s.state.Running)
	if d.Desired == s.state.Running {
		s.log.Debug("hold", "reason", d.Reason, "running", s.state.Running, "backlog", o.Backlog())
		return
	}
	s.state.LastChange = now
	s.log.Info("scale", "from", s.state.Running, "to", d.Desired, "reason", d.Reason,
		"ready", o.Ready, "unacked", o.Unacked, "rate_in", round(o.RateIn), "rate_out", round(o.RateOut), "drain", human(o.DrainTime()))
	s.ensure(d.Desired, d.Reason)
}

// learn updates the per-replica capacity from a saturated observation:
// messages waiting, so every replica was busy. It keeps the highest seen:
// the management API's rates lag, and a low sample taken while replicas
// were starting would otherwise hold back every scale-down; one too high
// only slows a scale-up, which still adds a replica every interval.
func (s *Supervisor) learn(o Observation) {
	if !o.RatesKnown || o.Ready == 0 || s.state.Running == 0 || o.RateOut <= 0 {
		return
	}
	s.state.Capacity = max(s.state.Capacity, o.RateOut/float64(s.state.Running))
}

func round(f float64) float64 { return float64(int(f*10)) / 10 }
