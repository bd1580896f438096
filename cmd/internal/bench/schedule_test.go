package bench

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a clock whose time moves only when told: SleepUntil jumps
// to the wake-up time, and work "takes" time by Advance.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) SleepUntil(ctx context.Context, t time.Time) bool {
	if ctx.Err() != nil {
		return false
	}
	if t.After(c.now) {
		c.now = t
	}
	return true
}

func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestScheduleSlots(t *testing.T) {
	tests := []struct {
		name      string
		sched     Schedule
		slots     int
		lastSize  int
		slot      int
		wantAfter time.Duration
	}{
		{"one per call", Schedule{Start: t0, Rate: 1000, Batch: 1, Commands: 5}, 5, 1, 4, 4 * time.Millisecond},
		{"batches of ten", Schedule{Start: t0, Rate: 1000, Batch: 10, Commands: 25}, 3, 5, 2, 20 * time.Millisecond},
		{"fractional interval does not drift", Schedule{Start: t0, Rate: 3000, Batch: 1, Commands: 30001}, 30001, 1, 30000, 10 * time.Second},
		{"slow rate", Schedule{Start: t0, Rate: 0.5, Batch: 1, Commands: 3}, 3, 1, 2, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sched.Slots(); got != tt.slots {
				t.Errorf("Slots() = %d, want %d", got, tt.slots)
			}
			if got := tt.sched.SlotSize(tt.slots - 1); got != tt.lastSize {
				t.Errorf("last SlotSize = %d, want %d", got, tt.lastSize)
			}
			if got := tt.sched.At(tt.slot).Sub(t0); got != tt.wantAfter {
				t.Errorf("At(%d) = start+%v, want start+%v", tt.slot, got, tt.wantAfter)
			}
		})
	}
}

func TestCommandsFor(t *testing.T) {
	if got := commandsFor(500, 10*time.Second); got != 5000 {
		t.Errorf("commandsFor(500/s, 10s) = %d, want 5000", got)
	}
	if got := commandsFor(0.1, time.Second); got != 1 {
		t.Errorf("commandsFor(0.1/s, 1s) = %d, want at least 1", got)
	}
}

// A sender that takes 10 ms per call at 1000/s falls behind: the pacer
// still hands out slot i as due at i ms, so latency measured from the due
// time grows with the backlog (9i+10 ms) while latency from the actual
// send stays 10 ms. That is the coordinated-omission correction.
func TestPacerMeasuresFromTheSchedule(t *testing.T) {
	clock := &fakeClock{now: t0}
	sched := Schedule{Start: t0, Rate: 1000, Batch: 1, Commands: 5}
	p := NewPacer(sched, clock)
	for i := range 5 {
		slot, due, ok := p.Next(context.Background())
		if !ok || slot != i {
			t.Fatalf("Next() = %d, %v; want slot %d", slot, ok, i)
		}
		if want := t0.Add(time.Duration(i) * time.Millisecond); !due.Equal(want) {
			t.Errorf("slot %d due %v, want %v: the schedule must not move", i, due.Sub(t0), want.Sub(t0))
		}
		sent := clock.Now()
		clock.Advance(10 * time.Millisecond) // the call
		done := clock.Now()
		if got, want := done.Sub(due), time.Duration(9*i+10)*time.Millisecond; got != want {
			t.Errorf("slot %d: latency from due %v, want %v", i, got, want)
		}
		if got := done.Sub(sent); got != 10*time.Millisecond {
			t.Errorf("slot %d: latency from send %v, want 10ms", i, got)
		}
	}
	if _, _, ok := p.Next(context.Background()); ok {
		t.Error("Next after the last slot: ok, want done")
	}
}

// A sender that is early waits for its slot.
func TestPacerWaitsForTheSlot(t *testing.T) {
	clock := &fakeClock{now: t0}
	p := NewPacer(Schedule{Start: t0.Add(time.Second), Rate: 10, Batch: 2, Commands: 4}, clock)
	_, due, _ := p.Next(context.Background())
	if !clock.Now().Equal(due) || due.Sub(t0) != time.Second {
		t.Errorf("first slot returned at %v (due %v), want both at start+1s", clock.Now().Sub(t0), due.Sub(t0))
	}
	_, due, _ = p.Next(context.Background())
	if got := due.Sub(t0); got != 1200*time.Millisecond {
		t.Errorf("second slot of 2 at 10/s due at %v, want start+1.2s", got)
	}
}

func TestPacerStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := NewPacer(Schedule{Start: t0, Rate: 10, Batch: 1, Commands: 10}, &fakeClock{now: t0})
	if _, _, ok := p.Next(ctx); ok {
		t.Error("Next with a cancelled context: ok, want false")
	}
}
