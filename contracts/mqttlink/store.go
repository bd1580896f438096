package mqttlink

import (
	"context"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// resumeStore is paho's memory store with one addition: it notices when
// paho takes its snapshot of stored messages after a connection is made
// (All, in resume) or drops them (Reset, for a clean session).
//
// Why: paho calls OnConnect before it resends the messages stored from the
// previous connection. A message published in that window is both sent
// normally and picked up by the resend, which replaces its token, so the
// publisher never hears the PUBACK (and the race detector flags the shared
// packet). The link therefore reports itself connected only after the
// snapshot was taken; later publishes cannot be part of it.
type resumeStore struct {
	paho.Store

	mu      sync.Mutex
	gen     uint64
	changed chan struct{}
}

func newResumeStore() *resumeStore {
	return &resumeStore{Store: paho.NewMemoryStore(), changed: make(chan struct{})}
}

func (s *resumeStore) All() []string {
	keys := s.Store.All()
	s.bump()
	return keys
}

func (s *resumeStore) Reset() {
	s.Store.Reset()
	s.bump()
}

func (s *resumeStore) bump() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
}

// Gen counts snapshots and resets so far.
func (s *resumeStore) Gen() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// waitPast waits until a snapshot or reset happened after gen, timeout
// passes, or ctx is done.
func (s *resumeStore) waitPast(ctx context.Context, gen uint64, timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		s.mu.Lock()
		cur, changed := s.gen, s.changed
		s.mu.Unlock()
		if cur > gen {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
