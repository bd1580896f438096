package ledger

import (
	"context"
	"errors"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts/amqplink"
	"cafe/contracts/records"
)

// batch is the batch in hand: the events of the deliveries the consumer
// gave it since the last commit, in the queue's order (one goroutine adds
// them as they come), so the first of two results for a command is its
// result. It is the ledger's amqplink.BatchHandler: the consumer flushes it
// at Config.BatchSize events (a delivery's events are never split, so it
// may go over by one delivery's), Config.BatchSize deliveries (the
// prefetch: nothing more can come), or Config.BatchWait after its first
// delivery, and acks all its deliveries with one basic.ack once it has
// committed.
type batch struct {
	l      *Ledger
	events []records.Event // reused from batch to batch
}

// Add is the ledger's ack policy for one delivery (see the package doc):
// Done joins the batch, and is acked once it has committed.
func (b *batch) Add(d *amqp.Delivery) (amqplink.Verdict, int) {
	before := len(b.events)
	var err error
	b.events, err = b.l.decode(d, b.events)
	if err != nil {
		b.events = b.events[:before]
		if errors.Is(err, errSkip) {
			b.l.m.skipped.Inc()
			return amqplink.Done(), 0 // acked with the batch: nothing to write
		}
		b.l.m.invalid.Inc()
		return amqplink.Poison("not an event: " + err.Error()), 0
	}
	return amqplink.Done(), len(b.events) - before
}

// Flush commits the batch, and counts its events once it has. A batch
// PostgreSQL refuses is written again every Config.RetryEvery, holding its
// messages unacked, until it commits or ctx ends (the grace period after
// shutdown is over: the error then, and the consumer hands the messages
// back): with the database down the events wait in RabbitMQ (no more than
// the prefetch in hand), and nothing is acked that was not committed.
func (b *batch) Flush(ctx context.Context) error {
	if len(b.events) == 0 {
		return nil // only deliveries with nothing to record
	}
	err := b.l.commit(ctx, b.events)
	if err == nil {
		for _, ev := range b.events {
			b.l.m.written(ev.Kind).Inc()
		}
	}
	clear(b.events) // let the results' bytes go before the next batch
	b.events = b.events[:0]
	return err
}

// commit writes events until they commit or ctx ends (the error then).
func (l *Ledger) commit(ctx context.Context, events []records.Event) error {
	for {
		start := time.Now()
		err := l.attempt(ctx, events)
		if err == nil {
			l.observe(start, events)
			return nil
		}
		if l.healthy.Swap(false) {
			l.log.Warn("cannot write to PostgreSQL; holding the events and trying again", "events", len(events), "err", err)
		}
		l.m.writeFailures.Inc()
		select {
		case <-ctx.Done():
			return err
		case <-time.After(l.cfg.RetryEvery):
		}
	}
}

// attempt is one write of events, given up after Config.WriteTimeout (the
// server may still commit it: written again, it changes nothing).
func (l *Ledger) attempt(ctx context.Context, events []records.Event) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.WriteTimeout)
	defer cancel()
	return l.links.Store.Write(ctx, events)
}

func (l *Ledger) observe(start time.Time, events []records.Event) {
	now := time.Now()
	if !l.healthy.Swap(true) {
		l.log.Info("writing to PostgreSQL again")
	}
	l.m.batch.Observe(float64(len(events)))
	l.m.writeTime.Observe(now.Sub(start).Seconds())
	for _, e := range events {
		if !e.At.IsZero() {
			l.m.lag.Observe(now.Sub(e.At).Seconds())
		}
	}
}
