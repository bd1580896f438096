package status

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"cafe/cmd/internal/mgmt"
	"cafe/contracts"
	"cafe/contracts/mqttlink"
)

// Snapshot is the state of one pipeline at one moment. Each part names
// the source it came from; a source that could not be read leaves its
// part empty and adds an Error, and the others are still filled.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Prefix   string    `json:"prefix"`
	Queues   []Queue   `json:"queues"`
	Baristas Role      `json:"baristas"`
	Callers  Role      `json:"callers"`
	Devices  *Devices  `json:"devices,omitempty"`
	Breakers *Count    `json:"breakers_open,omitempty"`
	Dead     *Dead     `json:"dead_letters,omitempty"`
	Oldest   *Oldest   `json:"oldest_waiting,omitempty"`
	Ledger   *Ledger   `json:"ledger,omitempty"`
	Errors   []Error   `json:"errors,omitempty"`

	wait *float64 // the longest cafe_barista_queue_wait_seconds, if any barista answered
}

// Queue is one queue's counts and rates (RabbitMQ's management API).
type Queue struct {
	Name      string  `json:"name"`
	Messages  int     `json:"messages"`
	Ready     int     `json:"ready"`
	Unacked   int     `json:"unacked"`
	Consumers int     `json:"consumers"`
	RateIn    float64 `json:"rate_in"`  // publishes per second
	RateOut   float64 `json:"rate_out"` // acks per second (work finished)

	published int // ever published to it (a change of contents the depth may not show)
}

// Role is how many of one role are running: consumers on its queue, and
// how many of the ops endpoints given for it answered.
type Role struct {
	Consumers int `json:"consumers"`
	Endpoints int `json:"endpoints"`    // given
	Up        int `json:"endpoints_up"` // answered
}

// Devices is how many devices say they are online (retained presence).
type Devices struct {
	Online int    `json:"online"`
	Known  int    `json:"known"` // with any retained presence
	Source string `json:"source"`
}

// Count is a number and where it came from.
type Count struct {
	N      int    `json:"n"`
	Source string `json:"source"`
}

// Dead is the dead-letter queue by reason.
type Dead struct {
	Total    int            `json:"total"`
	ByReason map[string]int `json:"by_reason"`
	Partial  bool           `json:"partial,omitempty"` // more letters than were looked at
}

// Oldest is the age of the oldest waiting command, and how it was found.
type Oldest struct {
	Known   bool          `json:"known"`
	Age     time.Duration `json:"age_ns"`
	Seconds float64       `json:"age_seconds"`
	Source  string        `json:"source"`
}

// Ledger is how far the command ledger is behind: the events waiting in
// its queue (copies of what happened to each command, not yet written to
// PostgreSQL), the ledgers taking them, and the lag that makes.
type Ledger struct {
	Waiting int           `json:"events_waiting"` // ready + unacked in {prefix}.events
	Ledgers int           `json:"ledgers"`        // consumers of the events queue
	Lag     time.Duration `json:"lag_ns"`         // estimate: waiting ÷ rate out (0: nothing waits)
	Seconds float64       `json:"lag_seconds"`
	Source  string        `json:"source"`
}

// Error is a source that could not be read.
type Error struct {
	Source string `json:"source"`
	Err    string `json:"error"`
}

// Where the workers' metrics are: breakers open and the oldest command's
// age come from the baristas, not from RabbitMQ.
var (
	SettingBaristaMetrics = contracts.Setting{Flag: "barista-metrics", Env: "CAFE_BARISTA_METRICS"}
	SettingCallerMetrics  = contracts.Setting{Flag: "caller-metrics", Env: "CAFE_CALLER_METRICS"}
)

// Config says where each source is.
type Config struct {
	Topology      contracts.Topology
	ManagementURL string // http://127.0.0.1:15672, with the login as user info or in User/Password
	User          string
	Password      string
	AMQPURL       string          // for the dead letters (browsed as cafe-ops)
	MQTT          mqttlink.Config // for retained presence
	NoPresence    bool            // do not read presence (the console keeps its own index of it)
	DevicePattern string          // count only devices whose id matches (path.Match); "": all
	Baristas      []string        // their /metrics URLs
	Callers       []string
	Timeout       time.Duration // per source
}

// Gatherer reads a Snapshot from its sources, all at once. It keeps what
// it needs between calls (the dead letters are browsed again only when
// the dead queue changed), so `cafe status --watch` and a console reuse
// one Gatherer.
type Gatherer struct {
	cfg     Config
	log     *slog.Logger
	client  *http.Client // its own, so Close can close its connections
	mgmt    *mgmt.Client // nil when ManagementURL is unusable (mgmtErr says why)
	mgmtErr error
	dead    deadCache
}

// New returns a Gatherer for cfg.
func New(cfg Config, log *slog.Logger) *Gatherer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	g := &Gatherer{cfg: cfg, log: log, client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}}
	g.mgmt, g.mgmtErr = mgmt.New(cfg.ManagementURL, mgmt.VHostOf(cfg.AMQPURL), cfg.User, cfg.Password)
	return g
}

// Close closes the connections a Gatherer keeps open between calls.
func (g *Gatherer) Close() {
	g.client.CloseIdleConnections()
	if g.mgmt != nil {
		g.mgmt.Close()
	}
}

// Gather reads every source, in parallel, each within the timeout.
func (g *Gatherer) Gather(ctx context.Context) Snapshot {
	s := Snapshot{Time: time.Now().UTC(), Prefix: g.cfg.Topology.Prefix}
	var mu sync.Mutex
	var wg sync.WaitGroup
	run := func(source string, read func(ctx context.Context, s *Snapshot, mu *sync.Mutex) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
			defer cancel()
			if err := read(ctx, &s, &mu); err != nil {
				mu.Lock()
				s.Errors = append(s.Errors, Error{Source: source, Err: err.Error()})
				mu.Unlock()
			}
		}()
	}
	run("rabbitmq management", g.queues)
	if !g.cfg.NoPresence {
		run("mqtt presence", g.devices)
	}
	run("barista metrics", g.baristaMetrics)
	run("caller metrics", g.callerMetrics)
	wg.Wait()
	// The dead letters need the dead queue's depth, read above.
	ctx2, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := g.deadLetters(ctx2, &s); err != nil {
		s.Errors = append(s.Errors, Error{Source: "dead letters", Err: err.Error()})
	}
	s.Oldest = oldest(s, g.cfg.Topology.CommandsQueue())
	s.Ledger = ledgerLag(s, g.cfg.Topology.EventsQueue())
	return s
}

// Queue returns the queue named name, if it was read.
func (s Snapshot) Queue(name string) (Queue, bool) {
	for _, q := range s.Queues {
		if q.Name == name {
			return q, true
		}
	}
	return Queue{}, false
}

// Topology is the pipeline this Gatherer reads.
func (g *Gatherer) Topology() contracts.Topology { return g.cfg.Topology }
