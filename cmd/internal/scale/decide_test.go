package scale

import (
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	long := now.Add(-time.Hour)
	p := Policy{Min: 1, Max: 8, TargetDrain: 10 * time.Second, Quiet: 30 * time.Second, Settle: 5 * time.Second}
	cases := []struct {
		name         string
		s            State
		o            Observation
		want         int
		pressure     bool
		reasonSubstr string
	}{
		{"below min starts up to min", State{Running: 0}, Observation{}, 1, false, "below the minimum"},
		{"above max comes down to max", State{Running: 9}, Observation{}, 8, false, "above the maximum"},
		{"idle at min holds", State{Running: 1, LastChange: long}, Observation{RatesKnown: true}, 1, false, "at the minimum"},
		{"backlog not shrinking doubles", State{Running: 2, LastChange: long}, Observation{Ready: 500, RateIn: 50, RateOut: 50, RatesKnown: true}, 4, true, "forever"},
		{"backlog too slow to drain doubles", State{Running: 3, LastChange: long}, Observation{Ready: 1000, RateIn: 0, RateOut: 20, RatesKnown: true}, 6, true, "would take 50s"},
		{"learnt capacity sizes the step", State{Running: 1, LastChange: long, Capacity: 100}, Observation{Ready: 2000, RateIn: 300, RateOut: 100, RatesKnown: true}, 5, true, "backlog 2000"},
		{"step capped at max", State{Running: 6, LastChange: long}, Observation{Ready: 9000, RateOut: 1, RatesKnown: true}, 8, true, "backlog"},
		{"at max holds with pressure", State{Running: 8, LastChange: long}, Observation{Ready: 9000, RateOut: 1, RatesKnown: true}, 8, true, "already at the maximum"},
		{"a change still settling holds the next step up", State{Running: 2, LastChange: now.Add(-2 * time.Second)}, Observation{Ready: 500, RateOut: 1, RatesKnown: true}, 2, true, "still taking effect"},
		{"old oldest message scales up", State{Running: 1, LastChange: long}, Observation{Ready: 1, RateOut: 100, OldestAge: 11 * time.Second}, 2, true, "oldest"},
		{"nothing ready: in-hand work alone never scales up", State{Running: 1, LastChange: now}, Observation{Unacked: 5, RatesKnown: true}, 1, false, "at the minimum"},
		{"backlog draining in time holds", State{Running: 2, LastChange: now}, Observation{Ready: 100, RateIn: 10, RateOut: 110, RatesKnown: true}, 2, false, "quiet for 0s"},
		{"no scale-down within quiet of a change", State{Running: 4, LastChange: now.Add(-29 * time.Second), LastPressure: long}, Observation{RatesKnown: true}, 4, false, "quiet for 29s of 30s"},
		{"no scale-down within quiet of pressure", State{Running: 4, LastChange: long, LastPressure: now.Add(-10 * time.Second)}, Observation{RatesKnown: true}, 4, false, "quiet for 10s"},
		{"quiet: one fewer", State{Running: 4, LastChange: long, LastPressure: long}, Observation{RatesKnown: true}, 3, false, "one fewer"},
		{"quiet but all still needed holds", State{Running: 4, LastChange: long, Capacity: 100}, Observation{RateIn: 390, RateOut: 390, RatesKnown: true}, 4, false, "4 replicas needed"},
		{"quiet and fewer would do: one fewer, never more", State{Running: 6, LastChange: long, Capacity: 100}, Observation{RateIn: 50, RateOut: 50, RatesKnown: true}, 5, false, "one fewer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(p, c.s, c.o, now)
			if got.Desired != c.want || got.Pressure != c.pressure || !strings.Contains(got.Reason, c.reasonSubstr) {
				t.Errorf("got %+v, want desired %d pressure %v reason containing %q", got, c.want, c.pressure, c.reasonSubstr)
			}
		})
	}
}

func TestDecideStaysWithinBounds(t *testing.T) {
	now := time.Now()
	p := Policy{Min: 2, Max: 5, TargetDrain: time.Second, Quiet: time.Second}
	for running := 0; running <= 7; running++ {
		for _, o := range []Observation{{}, {Ready: 1e6}, {Ready: 10, RateOut: 1000, RatesKnown: true}, {OldestAge: time.Hour}} {
			got := Decide(p, State{Running: running, Capacity: 0.5}, o, now)
			if got.Desired < p.Min || got.Desired > p.Max {
				t.Errorf("running %d, %+v: desired %d outside %d..%d", running, o, got.Desired, p.Min, p.Max)
			}
			if running >= p.Min && running <= p.Max && got.Desired < running-1 {
				t.Errorf("running %d: desired %d, more than one fewer at once", running, got.Desired)
			}
		}
	}
}

func TestDrainTime(t *testing.T) {
	cases := []struct {
		name string
		o    Observation
		want string
	}{
		{"empty", Observation{}, "0s"},
		{"net drain", Observation{Ready: 90, Unacked: 10, RateIn: 10, RateOut: 20}, "10s"},
		{"growing", Observation{Ready: 1, RateIn: 20, RateOut: 10}, "forever"},
	}
	for _, c := range cases {
		if got := human(c.o.DrainTime()); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}
