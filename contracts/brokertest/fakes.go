package brokertest

import (
	"context"
	"log/slog"
	"slices"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts/amqplink"
)

// Stand-ins for the broker links, for tests and benchmarks of a role's
// logic that need no broker (its policies, its per-message path). Tests of
// anything that talks to a broker use the real ones.

// Open is a gate that is always open (amqplink.Gate).
type Open struct{}

func (Open) WaitReady(context.Context) error { return nil }
func (Open) Lost() <-chan struct{}           { return nil }

// Confirming is a results publisher whose every publish is confirmed
// (barista.ResultPublisher). It records what it was given when Record is set.
type Confirming struct {
	Record bool

	mu   sync.Mutex
	sent []amqp.Publishing
}

func (c *Confirming) Publish(_ context.Context, _, _ string, msg amqp.Publishing) error {
	if c.Record {
		c.mu.Lock()
		c.sent = append(c.sent, msg)
		c.mu.Unlock()
	}
	return nil
}

// PublishGate is always open.
func (c *Confirming) PublishGate() amqplink.Gate { return Open{} }

// Sent is what was published, in order (with Record set).
func (c *Confirming) Sent() []amqp.Publishing {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]amqp.Publishing(nil), c.sent...)
}

// Feed is a queue that hands its consumer deliveries and records the
// verdict the handler returns for each (barista.CommandSource,
// caller.ResultSource). Consuming Queue, it calls the handler once per
// delivery Next returns, N of them one after the other, then closes Done;
// any other queue stays empty until the context ends.
type Feed struct {
	Queue string
	N     int
	Next  func(i int) *amqp.Delivery
	Done  chan struct{}

	mu       sync.Mutex
	verdicts []amqplink.Verdict
}

// NewFeed returns a Feed of n deliveries made by next, on queue.
func NewFeed(queue string, n int, next func(i int) *amqp.Delivery) *Feed {
	return &Feed{Queue: queue, N: n, Next: next, Done: make(chan struct{})}
}

func (f *Feed) Consume(ctx context.Context, cfg amqplink.ConsumerConfig, _ *slog.Logger, h amqplink.Handler) error {
	if cfg.Queue != f.Queue {
		<-ctx.Done()
		return nil
	}
	defer close(f.Done)
	for i := range f.N {
		v := h(ctx, f.Next(i))
		f.mu.Lock()
		f.verdicts = append(f.verdicts, v)
		f.mu.Unlock()
	}
	return nil
}

// Verdicts are the handler's verdicts, in order.
func (f *Feed) Verdicts() []amqplink.Verdict {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]amqplink.Verdict(nil), f.verdicts...)
}

// Drive runs a role on f: run (the role's Run) until f has handed over
// all its deliveries, then stops it and waits for it. It returns run's
// error.
func (f *Feed) Drive(ctx context.Context, run func(context.Context) error) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- run(ctx) }()
	select {
	case <-f.Done:
	case err := <-ran:
		return err // the role stopped before taking everything
	}
	stop()
	return <-ran
}

// Posted stands in for a fire-and-forget publisher (amqplink.Publisher's
// Post) and records what was posted, and to which exchange.
type Posted struct {
	mu        sync.Mutex
	msgs      []amqp.Publishing
	exchanges []string
}

// Post records m.
func (p *Posted) Post(exchange, _ string, m amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs, p.exchanges = append(p.msgs, m), append(p.exchanges, exchange)
	return nil
}

// Messages returns what was posted, with the exchanges it was posted to.
func (p *Posted) Messages() ([]amqp.Publishing, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs), slices.Clone(p.exchanges)
}
