package bench

import (
	"context"
	"math"
	"sync/atomic"
	"time"
)

// Clock is what pacing needs of time; tests give a fake one.
type Clock interface {
	Now() time.Time
	// SleepUntil returns at t (at once if t has passed), or false when ctx
	// ends first.
	SleepUntil(ctx context.Context, t time.Time) bool
}

// wallClock is the real clock.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) SleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Schedule is the plan of an open-loop phase: Commands commands in slots
// of Batch (one HTTP call each), slot i due at Start + i·Batch/Rate.
// Nothing about the pipeline's answers changes it; a slot sent late is
// still measured from the time it was due (see doc.go: coordinated
// omission).
type Schedule struct {
	Start    time.Time
	Rate     float64 // commands per second
	Batch    int
	Commands int
}

// Slots is the number of HTTP calls.
func (s Schedule) Slots() int { return (s.Commands + s.Batch - 1) / s.Batch }

// At is when slot i is due.
func (s Schedule) At(i int) time.Time {
	return s.Start.Add(time.Duration(math.Round(float64(i) * float64(s.Batch) / s.Rate * float64(time.Second))))
}

// SlotSize is the number of commands in slot i (the last may be short).
func (s Schedule) SlotSize(i int) int { return min(s.Batch, s.Commands-i*s.Batch) }

// commandsFor is how many commands rate sends in d.
func commandsFor(rate float64, d time.Duration) int {
	return max(1, int(math.Round(rate*d.Seconds())))
}

// Pacer hands the slots of a Schedule to any number of senders, each slot
// once and in order, and holds each sender until its slot is due. A sender
// that comes late gets its slot at once: the schedule never waits for the
// pipeline.
type Pacer struct {
	sched Schedule
	clock Clock
	next  atomic.Int64
}

// NewPacer paces sched on clock.
func NewPacer(sched Schedule, clock Clock) *Pacer { return &Pacer{sched: sched, clock: clock} }

// Next returns the next slot and when it was due, once it is due; ok is
// false when every slot is taken or ctx ended.
func (p *Pacer) Next(ctx context.Context) (slot int, due time.Time, ok bool) {
	i := int(p.next.Add(1) - 1)
	if i >= p.sched.Slots() {
		return 0, time.Time{}, false
	}
	due = p.sched.At(i)
	if !p.clock.SleepUntil(ctx, due) {
		return 0, time.Time{}, false
	}
	return i, due, true
}
