package console

import (
	"runtime"
	"testing"
	"time"

	"cafe/cmd/internal/status"
)

// A source that keeps failing keeps the time it first failed; one that
// recovers is forgotten, and its next failure starts a new "since".
func TestStatusRemembersSinceWhenASourceIsDown(t *testing.T) {
	s := &Status{since: map[string]time.Time{}}
	down := []status.Error{{Source: "rabbitmq management", Err: "connection refused"}}
	first := s.states(down)
	if len(first) != 1 || first[0].Name != "RabbitMQ" || first[0].Up || first[0].Since.IsZero() {
		t.Fatalf("first failure: %+v", first)
	}
	for !time.Now().After(first[0].Since) { // the clock moved on: a new "since" would differ
		runtime.Gosched()
	}
	if again := s.states(down); !again[0].Since.Equal(first[0].Since) {
		t.Errorf("still down: since %v, want the first failure's %v", again[0].Since, first[0].Since)
	}
	if up := s.states(nil); len(up) != 0 {
		t.Errorf("recovered: %+v, want no source down", up)
	}
	if later := s.states(down); !later[0].Since.After(first[0].Since) {
		t.Errorf("down again: since %v, want after %v", later[0].Since, first[0].Since)
	}
	if other := s.states([]status.Error{{Source: "something new", Err: "x"}}); other[0].Name != "something new" {
		t.Errorf("an unnamed source: %+v", other)
	}
}
