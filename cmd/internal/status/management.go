package status

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"cafe/cmd/internal/mgmt"
)

// queues reads each queue of the topology from RabbitMQ's management API
// (cmd/internal/mgmt): the one source of unacked counts and rates.
func (g *Gatherer) queues(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	if g.mgmtErr != nil {
		return g.mgmtErr
	}
	var qs []Queue
	var errs []error
	for _, q := range g.cfg.Topology.Queues() {
		m, err := g.mgmt.Queue(ctx, q.Name)
		if err != nil {
			if errors.Is(err, mgmt.ErrUnreachable) || errors.Is(err, mgmt.ErrRefused) {
				return err // the same for every queue
			}
			errs = append(errs, fmt.Errorf("queue %s: %w", q.Name, err))
			continue
		}
		qs = append(qs, Queue{Name: q.Name, Messages: m.Messages, Ready: m.Ready, Unacked: m.Unacked, Consumers: m.Consumers,
			RateIn: m.RateIn(), RateOut: m.RateOut(), published: m.Stats.Published})
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
