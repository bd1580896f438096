package scale

import (
	"fmt"
	"math"
	"time"
)

// Observation is what the queue says at one moment. Rates are messages per
// second; RatesKnown is false when only a passive declare could be made
// (no management API), and then RateIn and RateOut are estimates from the
// change in Ready between two observations (RateIn 0, RateOut the net drain).
type Observation struct {
	Ready      int           // waiting, not yet delivered
	Unacked    int           // delivered to a consumer, not yet acknowledged
	RateIn     float64       // published per second
	RateOut    float64       // acknowledged per second
	RatesKnown bool          // the rates come from RabbitMQ's management API
	OldestAge  time.Duration // age of the oldest waiting message; 0 if unknown
}

// Backlog is every message not finished yet: waiting or in a consumer's hands.
func (o Observation) Backlog() int { return o.Ready + o.Unacked }

// DrainTime is how long the backlog takes to clear at the current rates:
// 0 with no backlog, +Inf when it is not shrinking.
func (o Observation) DrainTime() time.Duration {
	b := o.Backlog()
	if b == 0 {
		return 0
	}
	net := o.RateOut - o.RateIn
	if net <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(float64(b) / net * float64(time.Second))
}

// Policy bounds and paces the decisions.
type Policy struct {
	Min, Max    int
	TargetDrain time.Duration // the backlog must clear within this
	Quiet       time.Duration // no scale-down until this long after the last change and the last pressure
	// Settle is how long a change is given to take effect (workers to
	// start, the management API's rates to catch up, every 5s by default)
	// before another scale-up: without it stale figures add a replica
	// every interval. 0: none.
	Settle time.Duration
}

// State is what the supervisor remembers between decisions.
type State struct {
	Running      int       // replicas running (not counting those stopping)
	LastChange   time.Time // when the desired count last changed
	LastPressure time.Time // when the backlog last would not drain within the target
	Capacity     float64   // messages per second one replica finished when saturated; 0 if not learnt yet
}

// Decision is the desired number of replicas and why.
type Decision struct {
	Desired  int
	Reason   string
	Pressure bool // the backlog would not drain within the target (State.LastPressure)
}

// Decide is the supervisor's rule, with no side effect: scale up at once
// when messages are waiting and the backlog would not drain within the
// target (or its oldest message is older than the target); with nothing
// ready, the replicas take every message as it comes, whatever they hold; scale down one replica at a time,
// only when the quiet period has passed since the last change and the last
// pressure and fewer replicas would still keep up; stay within Min..Max.
func Decide(p Policy, s State, o Observation, now time.Time) Decision {
	if s.Running < p.Min {
		return Decision{Desired: p.Min, Reason: fmt.Sprintf("%d running, below the minimum %d", s.Running, p.Min)}
	}
	if s.Running > p.Max {
		return Decision{Desired: p.Max, Reason: fmt.Sprintf("%d running, above the maximum %d", s.Running, p.Max)}
	}
	if d, ok := up(p, s, o); ok {
		if since := now.Sub(s.LastChange); d.Desired > s.Running && since < p.Settle {
			return Decision{Desired: s.Running, Pressure: true,
				Reason: fmt.Sprintf("%s; the last change %s ago is still taking effect (%s)", d.Reason, since.Round(time.Millisecond), p.Settle)}
		}
		return d
	}
	return down(p, s, o, now)
}

// up is the scale-up decision, when there is pressure.
func up(p Policy, s State, o Observation) (Decision, bool) {
	drain := o.DrainTime()
	why := ""
	switch {
	case o.Ready > 0 && drain > p.TargetDrain: // nothing ready: every arrival is taken at once
		why = fmt.Sprintf("backlog %d would take %s to drain (target %s)", o.Backlog(), human(drain), p.TargetDrain)
	case o.OldestAge > p.TargetDrain:
		why = fmt.Sprintf("oldest waiting message is %s old (target %s)", o.OldestAge.Round(time.Millisecond), p.TargetDrain)
	default:
		return Decision{}, false
	}
	want := max(s.Running+1, 2*s.Running) // capacity unknown: double
	if s.Capacity > 0 {
		want = max(s.Running+1, needed(p, s, o))
	}
	want = min(want, p.Max)
	if want <= s.Running {
		return Decision{Desired: s.Running, Reason: why + "; already at the maximum", Pressure: true}, true
	}
	return Decision{Desired: want, Reason: why, Pressure: true}, true
}

// needed is how many replicas of the learnt capacity keep up with the
// arrivals and clear the backlog within the target.
func needed(p Policy, s State, o Observation) int {
	rate := o.RateIn + float64(o.Backlog())/p.TargetDrain.Seconds()
	return int(math.Ceil(rate / s.Capacity))
}

// down is the decision when there is no pressure: hold, or one fewer.
func down(p Policy, s State, o Observation, now time.Time) Decision {
	hold := func(why string) Decision { return Decision{Desired: s.Running, Reason: why} }
	if s.Running <= p.Min {
		return hold(fmt.Sprintf("backlog %d drains in %s; at the minimum %d", o.Backlog(), human(o.DrainTime()), p.Min))
	}
	if since := now.Sub(latest(s.LastChange, s.LastPressure)); since < p.Quiet {
		return hold(fmt.Sprintf("backlog %d drains in %s; quiet for %s of %s", o.Backlog(), human(o.DrainTime()), since.Round(time.Second), p.Quiet))
	}
	if s.Capacity > 0 && o.RatesKnown && needed(p, s, o) >= s.Running {
		return hold(fmt.Sprintf("%d replicas needed for %.0f/s in and backlog %d", s.Running, o.RateIn, o.Backlog()))
	}
	return Decision{Desired: s.Running - 1, Reason: fmt.Sprintf("quiet for %s: backlog %d, %.0f/s in; one fewer", p.Quiet, o.Backlog(), o.RateIn)}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// human is a drain time for a log line ("never" for one that does not end).
func human(d time.Duration) string {
	if d == time.Duration(math.MaxInt64) {
		return "forever"
	}
	return d.Round(time.Millisecond).String()
}
