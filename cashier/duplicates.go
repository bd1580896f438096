package cashier

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"cafe/contracts"
	"cafe/contracts/records"
)

// duplicateBudget bounds the ledger lookup a submission waits for: past
// it, or with the database down, the command is accepted (the ledger is
// never in a command's critical path). Each query to the ledger has the
// same budget from when it is sent.
const duplicateBudget = 50 * time.Millisecond

// A database that stops answering would otherwise cost every submission
// the whole budget: after dupTrips queries in a row fail, the check is
// skipped without asking for dupOpenFor, then one query tries again.
const (
	dupTrips   = 3
	dupOpenFor = 5 * time.Second
)

// Coalescing (see dupLookups): at most dupInFlight queries in flight per
// cashier, and at most dupBatchPairs ids in one query (a submission with
// more, up to MaxBatchLimit, goes alone). One in flight against two: 0.005
// against 0.013 ms of PostgreSQL CPU a check at 64 submitters, 0.023
// against 0.033 at 16, about the same wall time (BenchmarkDuplicateCheck,
// docs/perf/duplicate-lookups.txt).
const (
	dupInFlight   = 1
	dupBatchPairs = 512
)

// newDupBreaker is the circuit breaker in front of the ledger queries.
func newDupBreaker() *gobreaker.CircuitBreaker[[]records.ClientMsg] {
	return gobreaker.NewCircuitBreaker[[]records.ClientMsg](gobreaker.Settings{
		Name:        "duplicate-check",
		MaxRequests: 1,
		Timeout:     dupOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= dupTrips },
	})
}

// duplicates refuses (409, CodeDuplicateID) a submission naming an id that
// the app already has a command pending with: accepted, recorded by the
// ledger, not done yet, and not refused (a command RabbitMQ nacked, whose
// copy the ledger recorded all the same, frees its id once the cashier's
// refusal is recorded: see refusal). The ledger writes within milliseconds, so a
// duplicate sent at once after the first may still be accepted; and with
// no ledger database, or one that does not answer within duplicateBudget,
// nothing is refused (counted in cafe_cashier_duplicate_checks_total:
// skipped, or open while the lookups are not even tried). Concurrent
// submissions share queries (dupLookups); each is counted once in the
// metric all the same.
func (s *Server) duplicates(ctx context.Context, client string, reqs []contracts.Request) *contracts.Error {
	if s.records == nil {
		return nil
	}
	ids := make([]records.ClientMsg, 0, len(reqs))
	for _, r := range reqs {
		if !r.Notification() {
			ids = append(ids, records.ClientMsg{Client: client, MsgID: string(r.ID)})
		}
	}
	if len(ids) == 0 {
		return nil
	}
	pending, err := s.dups.check(ctx, ids)
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		s.m.dupChecks.WithLabelValues("open").Inc()
		return nil
	case err != nil:
		s.m.dupChecks.WithLabelValues("skipped").Inc()
		return nil
	}
	if len(pending) == 0 {
		s.m.dupChecks.WithLabelValues("clear").Inc()
		return nil
	}
	s.m.dupChecks.WithLabelValues("conflict").Inc()
	return contracts.NewError(contracts.CodeDuplicateID, contracts.Detail{Field: "id",
		Reason: "a command with id " + strings.Join(pending, ", ") + " is still pending: wait for its result (GET " + CommandPath([]byte(pending[0])) + ") or use a new id"})
}

// dupLookups coalesces the duplicate checks of concurrent submissions
// into shared ledger queries, group-commit style. A query's fixed cost
// (the round trip, the executor's start, the system calls of both sides)
// is most of what a lookup costs PostgreSQL, so one query for many
// submissions costs little more than one for one.
//
//   - A submission that finds a slot free (fewer than dupInFlight queries
//     in flight) sends its own query at once, on its own goroutine and
//     context: a lone submission waits for nothing more than before.
//   - One that finds every slot taken joins the queue instead. When a
//     query ends, the one that ran it takes the queue (oldest first, up
//     to dupBatchPairs ids) and hands it to a new goroutine as one query
//     (records.Store.PendingAmong), keeping the slot; that goroutine goes
//     on with whatever queued meanwhile, and frees the slot when the queue
//     is empty. Each submission gets the ids of its own that are pending:
//     the pairs carry the app, so two apps using the same id never see
//     each other's.
//   - Each submission waits for at most duplicateBudget (and its request's
//     context) from when it asked, queued or not: one that gives up is
//     accepted unchecked (skipped), and if its query has not been sent it
//     is left out. A shared query has its own context, with the budget
//     from when it is sent, so no one caller's deadline cancels it.
//   - The breaker counts queries, not submissions: a shared query that
//     fails is one failure, and while the breaker is not closed (open, or
//     its one trial query out) a submission that would queue is told it
//     is open, as before.
type dupLookups struct {
	find    func(context.Context, []records.ClientMsg) ([]records.ClientMsg, error)
	breaker *gobreaker.CircuitBreaker[[]records.ClientMsg]
	pairs   prometheus.Histogram // ids per query sent
	slots   int                  // dupInFlight; tests change it
	budget  time.Duration        // duplicateBudget; tests change it

	mu      sync.Mutex
	flying  int        // queries in flight, at most slots
	waiting []*dupCall // queued while every slot was taken, oldest first
}

// dupCall is one submission's check.
type dupCall struct {
	ids     []records.ClientMsg // all of one app
	done    chan struct{}       // closed once pending and err are set
	pending []string            // of ids, in their order
	err     error
	gone    atomic.Bool // the caller stopped waiting (left out of a query not sent yet)
}

func newDupLookups(find func(context.Context, []records.ClientMsg) ([]records.ClientMsg, error), pairs prometheus.Histogram) *dupLookups {
	return &dupLookups{find: find, breaker: newDupBreaker(), pairs: pairs, slots: dupInFlight, budget: duplicateBudget}
}

// check returns which of ids (all of one app) are pending, or the
// breaker's error, or why it got no answer in time.
func (d *dupLookups) check(ctx context.Context, ids []records.ClientMsg) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.budget)
	defer cancel()
	c := &dupCall{ids: ids}
	d.mu.Lock()
	if d.flying < d.slots {
		d.flying++
		d.mu.Unlock()
		pending, err := d.query(ctx, ids)
		d.next()
		if err != nil {
			return nil, err
		}
		c.answer(pending)
		return c.pending, nil
	}
	if d.breaker.State() != gobreaker.StateClosed {
		d.mu.Unlock()
		return nil, gobreaker.ErrTooManyRequests
	}
	c.done = make(chan struct{})
	d.waiting = append(d.waiting, c)
	d.mu.Unlock()
	select {
	case <-c.done:
		return c.pending, c.err
	case <-ctx.Done():
		c.gone.Store(true)
		return nil, ctx.Err()
	}
}

// query sends one query through the breaker.
func (d *dupLookups) query(ctx context.Context, pairs []records.ClientMsg) ([]records.ClientMsg, error) {
	return d.breaker.Execute(func() ([]records.ClientMsg, error) {
		d.pairs.Observe(float64(len(pairs)))
		return d.find(ctx, pairs)
	})
}

// next is called by the holder of a slot whose query ended: it hands
// what queued meanwhile to a goroutine of its own (keeping the slot), or
// frees the slot.
func (d *dupLookups) next() {
	if batch := d.take(); len(batch) > 0 {
		go d.flush(batch)
	}
}

// take is the queue's oldest calls still waited for, up to dupBatchPairs
// ids (the first whatever its size); with none, it frees the caller's slot.
func (d *dupLookups) take() []*dupCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	var batch []*dupCall
	n, i := 0, 0
	for ; i < len(d.waiting); i++ {
		c := d.waiting[i]
		if c.gone.Load() {
			continue
		}
		if len(batch) > 0 && n+len(c.ids) > dupBatchPairs {
			break
		}
		batch, n = append(batch, c), n+len(c.ids)
	}
	rest := copy(d.waiting, d.waiting[i:])
	clear(d.waiting[rest:])
	d.waiting = d.waiting[:rest]
	if len(batch) == 0 {
		d.flying--
	}
	return batch
}

// flush sends batch as one query, answers its calls, and goes on with the
// queue until it is empty.
func (d *dupLookups) flush(batch []*dupCall) {
	var pairs []records.ClientMsg
	for len(batch) > 0 {
		pairs = pairs[:0]
		for _, c := range batch {
			pairs = append(pairs, c.ids...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.budget)
		pending, err := d.query(ctx, pairs)
		cancel()
		for _, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.answer(pending)
			}
			close(c.done)
		}
		batch = d.take()
	}
}

// answer sets c.pending: c's ids that are among pending (the pairs of a
// query, of any app).
func (c *dupCall) answer(pending []records.ClientMsg) {
	if len(pending) == 0 {
		return
	}
	for _, id := range c.ids {
		for _, p := range pending {
			if p == id {
				c.pending = append(c.pending, id.MsgID)
				break
			}
		}
	}
}
