package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// deadScanLimit bounds how many dead letters one status looks at to count
// them by reason; past it, Dead.Partial says so (the total is still the
// queue's depth).
const deadScanLimit = 10_000

// deadCache keeps the last count by reason, and the dead queue's depth and
// publish count it was made at: the letters are browsed again only when
// one of those changed. Browsing is safe (package deadletter says why) but
// counts a delivery of every letter, so a --watch every second should
// not browse every second.
type deadCache struct {
	mu    sync.Mutex
	key   [2]int
	valid bool
	last  Dead
}

func (g *Gatherer) deadLetters(ctx context.Context, s *Snapshot) error {
	conn, err := amqplink.Dial(amqplink.Config{URL: g.cfg.AMQPURL, DialTimeout: g.cfg.Timeout})
	if err != nil {
		return fmt.Errorf("RabbitMQ unreachable at %s: %w; start it: bash deploy/brokers.sh", contracts.RedactURL(g.cfg.AMQPURL), err)
	}
	defer conn.Close()
	depth, err := queueDepth(conn, g.cfg.Topology.DeadQueue())
	if err != nil {
		return err
	}
	if depth == 0 {
		s.Dead = &Dead{ByReason: map[string]int{}}
		return nil
	}
	// The management API's publish count lags by a few seconds, the depth
	// (from AMQP) does not: together they notice a replay plus a new letter.
	q, known := s.Queue(g.cfg.Topology.DeadQueue())
	key := [2]int{depth, q.published}
	c := &g.dead
	c.mu.Lock()
	defer c.mu.Unlock()
	if known && c.valid && c.key == key {
		d := c.last
		s.Dead = &d
		return nil
	}
	d, err := browseDead(ctx, conn, g.cfg.Topology)
	if err != nil {
		c.valid = false
		return err
	}
	d.Total = depth
	c.key, c.valid, c.last = key, known, d
	s.Dead = &d
	return nil
}

func queueDepth(conn *amqp.Connection, queue string) (int, error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("queue %s: %w (no cafe service has run with this prefix? check --amqp-prefix / CAFE_AMQP_PREFIX)", queue, err)
	}
	return q.Messages, nil
}

func browseDead(ctx context.Context, conn *amqp.Connection, top contracts.Topology) (Dead, error) {
	letters, err := deadletter.List(ctx, conn, top, deadletter.Filter{}, deadScanLimit)
	if err != nil {
		return Dead{}, err
	}
	d := Dead{ByReason: map[string]int{}, Partial: len(letters) >= deadScanLimit}
	for _, l := range letters {
		r := l.Reason
		if r == "" {
			r = "unknown"
		}
		d.ByReason[r]++
	}
	return d, nil
}

// oldest is the age of the oldest waiting command, from the safest source
// there is. RabbitMQ does not tell the age of a quorum queue's head
// (head_message_timestamp is for classic queues only), and peeking with
// basic.get and a requeue would count a delivery against the command's
// delivery limit. So:
//   - nothing ready in the commands queue: nothing waits (age 0);
//   - a barista answered: the longest cafe_barista_queue_wait_seconds, how
//     long the last command it received had waited since the cashier took
//     it; while there is a backlog that is about the head's age (a little
//     less: the head is younger than what was just taken, by however long
//     one command takes);
//   - otherwise an estimate: ready ÷ the rate out (how long the backlog
//     takes to drain, which is the head's age in a steady state);
//   - no rate out and no barista: unknown, and the status says why.
func oldest(s Snapshot, commands string) *Oldest {
	q, ok := s.Queue(commands)
	switch {
	case !ok:
		return nil
	case q.Ready == 0:
		return &Oldest{Known: true, Source: "nothing waiting"}
	case s.wait != nil:
		return age(*s.wait, "barista metrics: wait of the last command received")
	case q.RateOut > 0:
		return age(float64(q.Ready)/q.RateOut, "estimate: ready ÷ rate out")
	}
	return &Oldest{Source: "unknown: nothing is taking commands (no barista metrics given, rate out 0)"}
}

// ledgerLag is the ledger's lag, from the events queue alone: what waits
// there ÷ how fast the ledgers take it. (Each ledger also exports the
// measured lag, cafe_ledger_lag_seconds: event to commit.)
func ledgerLag(s Snapshot, events string) *Ledger {
	q, ok := s.Queue(events)
	if !ok {
		return nil
	}
	l := &Ledger{Waiting: q.Ready + q.Unacked, Ledgers: q.Consumers, Source: "nothing waiting"}
	switch {
	case l.Waiting == 0:
	case q.RateOut > 0:
		l.Seconds = float64(l.Waiting) / q.RateOut
		l.Lag = time.Duration(l.Seconds * float64(time.Second)).Round(time.Millisecond)
		l.Source = "estimate: events waiting ÷ rate out"
	default:
		l.Source = "unknown: no ledger is taking events (start one: ledger, or cafe up)"
	}
	return l
}

func age(seconds float64, source string) *Oldest {
	return &Oldest{Known: true, Age: time.Duration(seconds * float64(time.Second)).Round(time.Millisecond), Seconds: seconds, Source: source}
}
