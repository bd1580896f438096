package scale

import (
	"context"
	"time"

	"cafe/cmd/internal/mgmt"
	"cafe/contracts/amqplink"
)

// Source observes one queue.
type Source interface {
	Observe(ctx context.Context) (Observation, error)
}

// Inspector is what a QueueSource needs of a RabbitMQ link (amqplink.Link).
type Inspector interface {
	Inspect(ctx context.Context, queue string) (amqplink.QueueStats, error)
}

// QueueSource observes a queue over AMQP (passive declare: ready and
// consumers) and, when Management is set and answers, over RabbitMQ's
// management API (unacked and rates).
type QueueSource struct {
	Link       Inspector
	Queue      string
	Management *Management // nil: AMQP only
	OnFallback func(error) // told when the management API fails (nil: silent)

	prevReady int
	prevAt    time.Time
}

// Observe reads the queue once.
func (q *QueueSource) Observe(ctx context.Context) (Observation, error) {
	if q.Management != nil {
		o, err := q.Management.Observe(ctx, q.Queue)
		if err == nil {
			q.prevReady, q.prevAt = o.Ready, time.Now()
			return o, nil
		}
		if q.OnFallback != nil {
			q.OnFallback(err)
		}
	}
	st, err := q.Link.Inspect(ctx, q.Queue)
	if err != nil {
		return Observation{}, err
	}
	return q.estimate(st.Messages, time.Now()), nil
}

// estimate is an observation from the ready count alone: the net drain
// rate from the change since the previous observation.
func (q *QueueSource) estimate(ready int, now time.Time) Observation {
	o := Observation{Ready: ready}
	if !q.prevAt.IsZero() {
		if dt := now.Sub(q.prevAt).Seconds(); dt > 0 {
			o.RateOut = float64(q.prevReady-ready) / dt
		}
	}
	q.prevReady, q.prevAt = ready, now
	return o
}

// Management reads the queue's figures from RabbitMQ's management API
// (cmd/internal/mgmt, the client cafe status reads it with too).
type Management struct{ *mgmt.Client }

// NewManagement parses raw (credentials in its user info) for vhost.
func NewManagement(raw, vhost string) (*Management, error) {
	c, err := mgmt.New(raw, vhost, "", "")
	if err != nil {
		return nil, err
	}
	return &Management{c}, nil
}

// ErrUnauthorized: the management API refused the login.
var ErrUnauthorized = mgmt.ErrRefused

// Observe reads queue's figures.
func (m *Management) Observe(ctx context.Context, queue string) (Observation, error) {
	q, err := m.Queue(ctx, queue)
	if err != nil {
		return Observation{}, err
	}
	o := Observation{Ready: q.Ready, Unacked: q.Unacked, RateIn: q.RateIn(), RateOut: q.RateOut(), RatesKnown: true}
	if o.RateIn > 0 && o.Ready > 0 {
		o.OldestAge = time.Duration(float64(o.Ready) / o.RateIn * float64(time.Second))
	}
	return o, nil
}
