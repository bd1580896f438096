package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
)

// The RabbitMQ management API (the rabbitmq_management plugin) is the one
// source of unacked counts and rates: AMQP's queue.declare tells only
// ready messages and consumers. No well-kept Go client for it is served
// here (rabbit-hole is not), and one GET per queue is all that is needed.

// mgmtQueue is what GET /api/queues/{vhost}/{name} answers, in part.
type mgmtQueue struct {
	Messages  int `json:"messages"`
	Ready     int `json:"messages_ready"`
	Unacked   int `json:"messages_unacknowledged"`
	Consumers int `json:"consumers"`
	Stats     struct {
		Published int `json:"publish"`
		Publish   struct {
			Rate float64 `json:"rate"`
		} `json:"publish_details"`
		Ack struct {
			Rate float64 `json:"rate"`
		} `json:"ack_details"`
	} `json:"message_stats"`
}

// maxAPIBytes bounds an answer of the management API.
const maxAPIBytes = 1 << 20

func (g *Gatherer) queues(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	var qs []Queue
	var errs []error
	for _, q := range g.cfg.Topology.Queues() {
		var m mgmtQueue
		if err := g.getJSON(ctx, "/api/queues/"+url.PathEscape("/")+"/"+url.PathEscape(q.Name), &m); err != nil {
			if errors.Is(err, errUnreachable) || errors.Is(err, errRefused) {
				return err // the same for every queue
			}
			errs = append(errs, fmt.Errorf("queue %s: %w", q.Name, err))
			continue
		}
		qs = append(qs, Queue{Name: q.Name, Messages: m.Messages, Ready: m.Ready, Unacked: m.Unacked, Consumers: m.Consumers,
			RateIn: m.Stats.Publish.Rate, RateOut: m.Stats.Ack.Rate, published: m.Stats.Published})
	}
	mu.Lock()
	defer mu.Unlock()
	s.Queues = qs
	if q, ok := s.Queue(g.cfg.Topology.CommandsQueue()); ok {
		s.Baristas.Consumers = q.Consumers
	}
	if q, ok := s.Queue(g.cfg.Topology.ResultsQueue()); ok {
		s.Callers.Consumers = q.Consumers
	}
	return errors.Join(errs...)
}

var (
	errUnreachable = errors.New("RabbitMQ management unreachable")
	errRefused     = errors.New("RabbitMQ management refused the login")
	errNoQueue     = errors.New("no such queue (no cafe service has run with this prefix: check --amqp-prefix / CAFE_AMQP_PREFIX)")
)

func (g *Gatherer) getJSON(ctx context.Context, path string, v any) error {
	base, err := url.Parse(g.cfg.ManagementURL)
	if err != nil {
		return fmt.Errorf("management URL %q: %w", g.cfg.ManagementURL, err)
	}
	user, pass := g.cfg.User, g.cfg.Password
	if base.User != nil {
		user = base.User.Username()
		pass, _ = base.User.Password()
		base.User = nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+path, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %w; start it: bash deploy/brokers.sh (and rabbitmq-plugins enable rabbitmq_management)", errUnreachable, base.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBytes))
	switch {
	case err != nil:
		return fmt.Errorf("%w at %s: %w", errUnreachable, base.Host, err)
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w %q at %s (401): it needs the monitoring tag (task setup gives it to cafe-ops)", errRefused, user, base.Host)
	case resp.StatusCode == http.StatusNotFound:
		return errNoQueue
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("RabbitMQ management at %s answered %s", base.Host, resp.Status)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("RabbitMQ management at %s: unreadable answer: %w", base.Host, err)
	}
	return nil
}
