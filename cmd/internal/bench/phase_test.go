package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	h := newHist()
	for i := 1; i <= 1000; i++ {
		record(h, time.Duration(i)*time.Millisecond)
	}
	want := Percentiles{Count: 1000, P50: 500, P90: 900, P99: 990, P999: 999, Max: 1000, Mean: 500.5}
	if got := percentiles(h); !near(got, want) {
		t.Errorf("percentiles %+v, want %+v (±0.2%%)", got, want)
	}
	if got := percentiles(newHist()); got != (Percentiles{}) {
		t.Errorf("empty histogram: %+v, want zeros", got)
	}
	record(h, -time.Second) // clamped, not an error
	record(h, 2*time.Hour)
	if h.TotalCount() != 1002 {
		t.Errorf("out-of-range values were dropped")
	}
}

// near reports whether got has want's count and every figure within 0.2%
// of want's.
func near(got, want Percentiles) bool {
	g := []float64{got.P50, got.P90, got.P99, got.P999, got.Max, got.Mean}
	w := []float64{want.P50, want.P90, want.P99, want.P999, want.Max, want.Mean}
	for i := range g {
		if math.Abs(g[i]-w[i]) > w[i]*0.002 {
			return false
		}
	}
	return got.Count == want.Count
}

func TestReservoirKeepsABoundedUniformSample(t *testing.T) {
	r := newReservoir()
	for i := range 3 * maxSamples {
		r.add(point{T: float64(i)})
	}
	if len(r.pts) != maxSamples || r.seen != 3*maxSamples {
		t.Fatalf("kept %d of %d", len(r.pts), r.seen)
	}
	late := 0
	for _, p := range r.pts {
		if p.T >= 2*maxSamples {
			late++
		}
	}
	if late < maxSamples/4 || late > maxSamples/2 { // a third expected
		t.Errorf("%d of %d sampled points come from the last third: not uniform", late, maxSamples)
	}
}

// testPhase is a phase with no network: its records are driven by hand.
func testPhase(spec phaseSpec, n int) (*phase, *fakeClock) {
	clock := &fakeClock{now: t0}
	s := &session{run: "abc123", clock: clock, cfg: Config{Batch: 1}}
	p := newPhase(s, 0, spec)
	p.start, p.warmEnd = t0, t0.Add(spec.Warmup)
	p.cmds = make([]cmdState, n)
	return p, clock
}

func TestPhaseAccounting(t *testing.T) {
	p, _ := testPhase(phaseSpec{Name: "run", Rate: 1000, Batch: 1, Warmup: time.Second}, 6)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// 0: warmup, answered; not measured.
	p.markSent(0, 1, at(500*time.Millisecond), at(500*time.Millisecond), nil)
	p.answer(0, 1, 202, "", at(501*time.Millisecond))
	p.onResult(0, at(503*time.Millisecond), 0)
	// 1: due at 1s, sent 40 ms late, result 10 ms after the send.
	p.markSent(1, 1, at(time.Second), at(time.Second+40*time.Millisecond), nil)
	p.answer(1, 1, 202, "", at(time.Second+42*time.Millisecond))
	p.onResult(1, at(time.Second+50*time.Millisecond), 0)
	// 2: result twice.
	p.markSent(2, 1, at(1001*time.Millisecond), at(1001*time.Millisecond), nil)
	p.answer(2, 1, 202, "", at(1002*time.Millisecond))
	p.onResult(2, at(1004*time.Millisecond), 0)
	p.onResult(2, at(1005*time.Millisecond), 0)
	// 3: refused.
	p.markSent(3, 1, at(1002*time.Millisecond), at(1002*time.Millisecond), nil)
	p.answer(3, 1, 503, httpKey(503), at(1003*time.Millisecond))
	// 4: accepted, result never comes.
	p.markSent(4, 1, at(1003*time.Millisecond), at(1003*time.Millisecond), nil)
	p.answer(4, 1, 202, "", at(1004*time.Millisecond))
	// 5: the result (a device timeout) comes before the 202 is read.
	p.markSent(5, 1, at(1004*time.Millisecond), at(1004*time.Millisecond), nil)
	p.onResult(5, at(1010*time.Millisecond), -32001)
	p.answer(5, 1, 202, "", at(1011*time.Millisecond))
	// A result for a seq that does not exist.
	p.onResult(99, at(1012*time.Millisecond), 0)

	r := p.report()
	// What each of the six commands above adds up to.
	type tally struct {
		Commands, Warmup, Sent, Accepted, Refused, Results, Missing, Duplicates int
		HTTP503, DeviceTimeout, Awaiting, ForeignSeq                            int
	}
	got := tally{r.Commands, r.Warmup, r.Sent, r.Accepted, r.Refused, r.Results, r.Missing, r.Duplicates,
		r.Errors["http 503"], r.Errors["-32001 device timeout"], p.awaiting, p.foreignSeq}
	want := tally{Commands: 6, Warmup: 1, Sent: 5, Accepted: 4, Refused: 1, Results: 3, Missing: 1, Duplicates: 1,
		HTTP503: 1, DeviceTimeout: 1, Awaiting: 1, ForeignSeq: 1}
	if got != want {
		t.Errorf("counted %+v\nwant    %+v", got, want)
	}
	if r.Latency.Count != 3 {
		t.Fatalf("latency count %d, want 3 (the warmup command left out)", r.Latency.Count)
	}
	// Command 1 took 50 ms from its due time, 10 ms from its send.
	if r.Latency.Max < 49.9 || r.Latency.Max > 50.1 {
		t.Errorf("max latency %v ms, want 50 (from the due time)", r.Latency.Max)
	}
	if r.LatencyRaw.Max < 9.9 || r.LatencyRaw.Max > 10.1 {
		t.Errorf("max uncorrected latency %v ms, want 10 (from the send)", r.LatencyRaw.Max)
	}
	if len(r.Timeline) != 2 || r.Timeline[1].Count != 3 || r.Timeline[0].Sent != 1 || r.Timeline[1].Sent != 5 {
		t.Errorf("timeline %+v", r.Timeline)
	}
}

func TestCashierOnlyCompletesAtThe202(t *testing.T) {
	p, _ := testPhase(phaseSpec{Name: "run", Rate: 100, Batch: 2, CashierOnly: true}, 2)
	p.markSent(0, 2, t0, t0, nil)
	p.answer(0, 2, 202, "", t0.Add(3*time.Millisecond))
	r := p.report()
	if r.Latency.Count != 2 || r.Missing != 0 || p.awaiting != 0 {
		t.Errorf("cashier-only: %d latencies, %d missing, %d awaiting; want 2, 0, 0", r.Latency.Count, r.Missing, p.awaiting)
	}
	if !p.done(0, 2) {
		t.Error("a 202 finishes a cashier-only command")
	}
}

func TestClosedLoopWakesTheSender(t *testing.T) {
	p, _ := testPhase(phaseSpec{Name: "c", Concurrency: 1, Batch: 1}, 0)
	first, n := p.alloc(1)
	wake := make(chan struct{}, 1)
	p.markSent(first, n, t0, t0, wake)
	p.answer(first, n, 202, "", t0.Add(time.Millisecond))
	if p.done(first, n) {
		t.Fatal("done before the result")
	}
	p.onResult(first, t0.Add(2*time.Millisecond), 0)
	select {
	case <-wake:
	default:
		t.Fatal("the result did not wake the sender")
	}
	if !p.done(first, n) {
		t.Error("not done after the result")
	}
}

func TestRatesStretchWhenThePipelineFallsBehind(t *testing.T) {
	p, _ := testPhase(phaseSpec{Name: "run", Rate: 100, Batch: 1}, 100)
	for i := range 100 {
		due := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		p.markSent(i, 1, due, due, nil)
		p.answer(i, 1, 202, "", due.Add(time.Millisecond))
		// Results come at 50/s: the last one at 2s.
		p.onResult(i, t0.Add(time.Duration(i+1)*20*time.Millisecond), 0)
	}
	r := p.report()
	if r.AcceptedPerS < 99 || r.AcceptedPerS > 102 {
		t.Errorf("accepted/s %v, want about 100", r.AcceptedPerS)
	}
	if r.ResultsPerS < 49 || r.ResultsPerS > 51 {
		t.Errorf("results/s %v, want about 50", r.ResultsPerS)
	}
}
