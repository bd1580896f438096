package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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

// Management is a client of RabbitMQ's management HTTP API (plugin
// rabbitmq_management). No Go client of it is served by this project's
// module proxy, and cafe needs one read-only call, so it is this.
type Management struct {
	Base   *url.URL // http://user:password@host:15672/
	VHost  string
	Client *http.Client
}

// NewManagement parses raw (credentials in its user info).
func NewManagement(raw, vhost string) (*Management, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("management URL %q: want http://user:password@host:15672/", raw)
	}
	if vhost == "" {
		vhost = "/"
	}
	return &Management{Base: u, VHost: vhost, Client: &http.Client{Timeout: 5 * time.Second}}, nil
}

// queueInfo is the part of GET /api/queues/{vhost}/{name} cafe reads.
type queueInfo struct {
	Ready        int `json:"messages_ready"`
	Unacked      int `json:"messages_unacknowledged"`
	MessageStats struct {
		Publish struct {
			Rate float64 `json:"rate"`
		} `json:"publish_details"`
		Ack struct {
			Rate float64 `json:"rate"`
		} `json:"ack_details"`
	} `json:"message_stats"`
}

// ErrUnauthorized: the management API refused the login.
var ErrUnauthorized = errors.New("management API refused the login (the user needs the monitoring tag: `cafe setup` gives it to cafe-ops, or rabbitmqctl set_user_tags cafe-ops monitoring)")

// Observe reads queue's figures.
func (m *Management) Observe(ctx context.Context, queue string) (Observation, error) {
	base := *m.Base
	base.User = nil
	u := strings.TrimRight(base.String(), "/") + "/api/queues/" + url.PathEscape(m.VHost) + "/" + url.PathEscape(queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Observation{}, err
	}
	if m.Base.User != nil {
		pw, _ := m.Base.User.Password()
		req.SetBasicAuth(m.Base.User.Username(), pw)
	}
	resp, err := m.Client.Do(req)
	if err != nil {
		return Observation{}, fmt.Errorf("management API: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return Observation{}, ErrUnauthorized
	case resp.StatusCode != http.StatusOK:
		return Observation{}, fmt.Errorf("management API: %s for queue %s", resp.Status, queue)
	}
	var qi queueInfo
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&qi); err != nil {
		return Observation{}, fmt.Errorf("management API: queue %s: %w", queue, err)
	}
	o := Observation{Ready: qi.Ready, Unacked: qi.Unacked, RateIn: qi.MessageStats.Publish.Rate, RateOut: qi.MessageStats.Ack.Rate, RatesKnown: true}
	if o.RateIn > 0 && o.Ready > 0 {
		o.OldestAge = time.Duration(float64(o.Ready) / o.RateIn * float64(time.Second))
	}
	return o, nil
}
