package ledger

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/records"
)

// EventSource is what the ledger needs of the events queue: a consumer
// that settles each delivery from the verdict the ledger returns.
type EventSource interface {
	Consume(ctx context.Context, cfg amqplink.ConsumerConfig, log *slog.Logger, h amqplink.Handler) error
}

// Store is what the ledger needs of PostgreSQL.
type Store interface {
	Write(ctx context.Context, events []records.Event) error
	DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

// Links are the ledger's connections.
type Links struct {
	Events  EventSource
	Store   Store
	Metrics *amqplink.ConsumerMetrics // optional; shared per process
}

// Ledger writes the events queue to PostgreSQL in batches.
type Ledger struct {
	cfg     Config
	log     *slog.Logger
	top     contracts.Topology
	links   Links
	m       *metrics
	pending chan *item
	healthy atomic.Bool // the last write succeeded
}

// item is one delivery's events (one, or a batch of explicit events)
// waiting for the batch they joined to be committed.
type item struct {
	evs  []records.Event
	tag  uint64     // its delivery tag: the queue's order, restored in a batch
	done chan error // buffered
}

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
	l := &Ledger{cfg: cfg, log: log.With("ledger", cfg.Instance), top: top, links: links, m: m, pending: make(chan *item, cfg.BatchSize)}
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
func (l *Ledger) Run(ctx context.Context) error {
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { l.write(wctx) })
	wg.Go(func() { l.retain(ctx) })
	l.links.Metrics.Start(consumerName)
	err := l.links.Events.Consume(ctx, amqplink.ConsumerConfig{
		Queue:       l.top.EventsQueue(),
		Name:        consumerName,
		Tag:         "ledger-" + l.cfg.Instance,
		Concurrency: l.cfg.BatchSize,
		Grace:       l.cfg.Grace,
		Metrics:     l.links.Metrics,
	}, l.log, l.handle)
	stopWriter()
	wg.Wait()
	return err
}

// handle is the ledger's ack policy; see the package doc.
func (l *Ledger) handle(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
	evs, err := l.decode(d)
	if errors.Is(err, errSkip) {
		l.m.events.WithLabelValues("skipped").Inc()
		return amqplink.Done()
	}
	if err != nil {
		l.m.events.WithLabelValues("invalid").Inc()
		return amqplink.Poison("not an event: " + err.Error())
	}
	it := &item{evs: evs, tag: d.DeliveryTag, done: make(chan error, 1)}
	select {
	case l.pending <- it:
	case <-ctx.Done():
		return amqplink.GiveBack("the ledger is shutting down")
	}
	select {
	case err := <-it.done:
		if err != nil {
			return amqplink.GiveBack("not written: " + err.Error())
		}
		for _, ev := range evs {
			l.m.events.WithLabelValues(string(ev.Kind)).Inc()
		}
		return amqplink.Done()
	case <-ctx.Done():
		// The batch may still commit; its redelivery is then skipped as a
		// duplicate (records' idempotence).
		return amqplink.GiveBack("the ledger is shutting down")
	}
}
