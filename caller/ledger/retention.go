package ledger

import (
	"context"
	"time"
)

// retainEvery is how often the ledger removes what is past retention;
// retainChunk bounds one deletion, so none holds locks for long.
const (
	retainEvery = time.Minute
	retainChunk = 5000
)

// retain removes commands (with their history) first recorded Config.Retention ago, every
// retainEvery, until ctx is done. Several ledgers may do it at once: a row
// is deleted once.
func (l *Ledger) retain(ctx context.Context) {
	t := time.NewTicker(retainEvery)
	defer t.Stop()
	for {
		l.RetainOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RetainOnce removes what is past retention now, chunk by chunk, and
// then, where autovacuum is off, vacuums the tables once autovacuum would
// have (records.Store.Tidy): the rows it deleted and those the writes
// replaced are dead until then, in the tables and their indexes.
func (l *Ledger) RetainOnce(ctx context.Context) {
	l.remove(ctx)
	if ctx.Err() != nil {
		return
	}
	ran, err := l.links.Store.Tidy(ctx)
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("retention: could not vacuum the records' tables; trying again later", "err", err)
		}
		return
	}
	if len(ran) > 0 {
		l.log.Info("retention: autovacuum is off; did its work on the records' tables", "ran", ran)
	}
}

// remove deletes what is past retention now, chunk by chunk.
func (l *Ledger) remove(ctx context.Context) {
	cutoff := time.Now().Add(-l.cfg.Retention)
	for ctx.Err() == nil {
		n, err := l.links.Store.DeleteBefore(ctx, cutoff, retainChunk)
		l.m.deleted.Add(float64(n))
		if err != nil {
			if ctx.Err() == nil {
				l.log.Warn("retention: could not remove old records; trying again later", "err", err)
			}
			return
		}
		if n < retainChunk {
			return
		}
	}
}
