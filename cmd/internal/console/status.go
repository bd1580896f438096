package console

import (
	"context"
	"sync"
	"time"

	"cafe/cmd/internal/status"
)

// Status is the console's Pipeline: the Snapshot `cafe status` prints
// (cmd/internal/status), read at most once per interval however many
// browsers watch, with the p99 latency added and each failing source
// remembered with the time it started failing.
type Status struct {
	g        *status.Gatherer
	lat      *Latency
	interval time.Duration

	mu    sync.Mutex
	last  PipelineView
	read  time.Time
	since map[string]time.Time // source → when it went down
}

// NewStatus reads g at most once per interval; lat may be nil.
func NewStatus(g *status.Gatherer, lat *Latency, interval time.Duration) *Status {
	return &Status{g: g, lat: lat, interval: interval, since: map[string]time.Time{}}
}

// Pipeline is the latest view, read again when it is older than the interval.
func (s *Status) Pipeline(ctx context.Context) PipelineView {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.read) < s.interval {
		return s.last
	}
	snap := s.g.Gather(ctx)
	s.last, s.read = s.view(snap), time.Now()
	return s.last
}

// sourceNames are the status package's sources as the console names them.
var sourceNames = map[string]string{"rabbitmq management": "RabbitMQ", "dead letters": "RabbitMQ dead letters",
	"barista metrics": "barista metrics", "caller metrics": "caller metrics"}

func (s *Status) view(snap status.Snapshot) PipelineView {
	v := PipelineView{At: snap.Time, Queues: []Queue{}, Commands: 0,
		Workers: []Workers{workers("baristas", snap.Baristas), workers("callers", snap.Callers)}}
	for _, q := range snap.Queues {
		v.Queues = append(v.Queues, Queue{Name: q.Name, Depth: q.Messages, Ready: q.Ready, Unacked: q.Unacked, InRate: q.RateIn, OutRate: q.RateOut, Consumers: q.Consumers})
	}
	if q, ok := snap.Queue(s.topCommands()); ok {
		v.Commands = q.RateIn
	}
	if snap.Breakers != nil {
		v.Breakers = &snap.Breakers.N
	}
	if snap.Dead != nil {
		v.DeadBy = snap.Dead.ByReason
	}
	v.Ledger = snap.Ledger
	if s.lat != nil {
		v.P99Millis = s.lat.P99Millis()
	}
	v.Sources = s.states(snap.Errors)
	return v
}

func (s *Status) topCommands() string { return s.g.Topology().CommandsQueue() }

func workers(role string, r status.Role) Workers {
	return Workers{Role: role, Consumers: r.Consumers, Endpoints: r.Endpoints, Up: r.Up}
}

// states are the sources that failed, each with when it started failing
// (RabbitMQ first seen down at 12:03:04 stays "since 12:03:04").
func (s *Status) states(errs []status.Error) []SourceState {
	down := map[string]bool{}
	out := []SourceState{}
	for _, e := range errs {
		name := sourceNames[e.Source]
		if name == "" {
			name = e.Source
		}
		if s.since[name].IsZero() {
			s.since[name] = time.Now()
		}
		down[name] = true
		out = append(out, SourceState{Name: name, Since: s.since[name], Error: e.Err})
	}
	for name := range s.since {
		if !down[name] {
			delete(s.since, name)
		}
	}
	return out
}
