package ledger

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/records"
)

// EventSource is what the ledger needs of the events queue: a consumer
// that hands it deliveries in order and settles them a batch at a time
// (amqplink.Link.ConsumeBatches).
type EventSource interface {
	ConsumeBatches(ctx context.Context, cfg amqplink.BatchConfig, log *slog.Logger, h amqplink.BatchHandler) error
}

// Store is what the ledger needs of PostgreSQL.
type Store interface {
	Write(ctx context.Context, events []records.Event) error
	DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// Tidy does autovacuum's work where it is off, and names what it ran.
	Tidy(ctx context.Context) ([]string, error)
}

// Links are the ledger's connections.
type Links struct {
	Events  EventSource
	Store   Store
	Metrics *amqplink.ConsumerMetrics // optional; shared per process
}

// Ledger writes the events queue to PostgreSQL in batches.
type Ledger struct {
	cfg       Config
	log       *slog.Logger
	top       contracts.Topology
	exchanges exchanges
	links     Links
	m         *metrics
	healthy   atomic.Bool // the last write succeeded
}

// exchanges are the topology's exchange names, which decode compares
// every delivery's with: built once, as each Topology method builds its
// name anew (an allocation per call).
type exchanges struct{ commands, results, dead, events string }

// New builds a ledger. Nothing runs until Run.
func New(cfg Config, top contracts.Topology, links Links, prom prometheus.Registerer, log *slog.Logger) (*Ledger, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(prom)
	if err != nil {
		return nil, err
	}
	l := &Ledger{cfg: cfg, log: log.With("ledger", cfg.Instance), top: top, links: links, m: m,
		exchanges: exchanges{commands: top.CommandsExchange(), results: top.ResultsExchange(), dead: top.DeadExchange(), events: top.EventsExchange()}}
	l.healthy.Store(true)
	return l, nil
}

// Healthy reports whether the last write to PostgreSQL succeeded.
func (l *Ledger) Healthy() bool { return l.healthy.Load() }

// consumerName labels the ledger's consumer in logs and metrics.
const consumerName = "ledger"

// Run records events until ctx is done, and removes what is past
// retention in the background; it returns once the batch in hand is
// written or handed back (within Config.Grace).
//
// The events queue is consumed in batches (amqplink.Link.ConsumeBatches):
// one goroutine decodes the deliveries in the queue's order into the batch
// in hand (batch.Add), commits it (batch.Flush), and acks it with one
// basic.ack. Before, a pool of BatchSize handlers (512 goroutines) each
// waited on a channel of its own for the batch its delivery had joined,
// and acked it on its own: the goroutine hand-offs, wake-ups and held acks
// around each delivery cost more CPU than its decoding.
func (l *Ledger) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { l.retain(ctx) })
	l.links.Metrics.Start(consumerName)
	err := l.links.Events.ConsumeBatches(ctx, amqplink.BatchConfig{
		Queue:    l.top.EventsQueue(),
		Name:     consumerName,
		Tag:      "ledger-" + l.cfg.Instance,
		Size:     l.cfg.BatchSize,
		Prefetch: l.cfg.BatchSize,
		Wait:     l.cfg.BatchWait,
		Grace:    l.cfg.Grace,
		Metrics:  l.links.Metrics,
	}, l.log, &batch{l: l})
	wg.Wait()
	return err
}
