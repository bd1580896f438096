package ledger

import (
	"cafe/contracts/records"
	"cmp"
	"context"
	"slices"
	"time"
)

// write gathers events into batches (up to Config.BatchSize events, or what
// came within Config.BatchWait of the first; a delivery's events stay in
// one batch) and commits each in one
// transaction. A batch PostgreSQL refuses is written again every
// Config.RetryEvery, holding its messages unacked, until it commits or ctx
// ends: with the database down the events wait in RabbitMQ (no more than
// the prefetch in hand), and nothing is acked that was not committed.
func (l *Ledger) write(ctx context.Context) {
	for {
		batch := l.gather(ctx)
		if batch == nil {
			return
		}
		err := l.commit(ctx, batch)
		for _, it := range batch {
			it.done <- err
		}
	}
}

func (l *Ledger) gather(ctx context.Context) []*item {
	var batch []*item
	events := 0
	select {
	case it := <-l.pending:
		batch, events = append(batch, it), len(it.evs)
	case <-ctx.Done():
		return nil
	}
	timer := time.NewTimer(l.cfg.BatchWait)
	defer timer.Stop()
	for events < l.cfg.BatchSize {
		select {
		case it := <-l.pending:
			batch, events = append(batch, it), events+len(it.evs)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// commit writes batch until it commits or ctx ends (the error then).
func (l *Ledger) commit(ctx context.Context, batch []*item) error {
	// Handlers hand their events over concurrently; write them in the
	// queue's order, so the first of two results for a command is its result.
	slices.SortFunc(batch, func(a, b *item) int { return cmp.Compare(a.tag, b.tag) })
	n := 0
	for _, it := range batch {
		n += len(it.evs)
	}
	events := make([]records.Event, 0, n)
	for _, it := range batch {
		events = append(events, it.evs...)
	}
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
