package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"cafe/contracts"
)

// phaseSpec is one load phase: open loop at Rate, or closed loop at
// Concurrency; Commands of them, or for Duration.
type phaseSpec struct {
	Name        string
	Rate        float64
	Concurrency int
	Batch       int // commands per HTTP call
	Commands    int
	Duration    time.Duration
	Warmup      time.Duration // commands due in the first Warmup are not measured
	WarmupCount int           // nor are the first WarmupCount commands
	CashierOnly bool          // a command is done at its 202; no result is awaited
	Drain       time.Duration
}

func (s phaseSpec) open() bool { return s.Concurrency == 0 }

// Status of a command's HTTP call, besides HTTP status codes.
const (
	statusPending   = 0
	statusTransport = -1 // no HTTP answer (connection refused, timeout, …)
)

// cmdState is the record of one command, indexed by its seq.
type cmdState struct {
	due, sent time.Duration // since the phase started
	status    int16
	results   uint16
	measured  bool
	wake      chan struct{} // closed loop: the sender waiting for it
}

// counts are what a phase counted, for all commands or the measured ones.
type counts struct {
	Sent, Accepted, Refused, Results, Duplicates int
}

// phase runs one load phase and keeps its records. Results are routed to it
// by the session while it runs and during its drain; a late result that
// comes after the phase ended is still recorded (as missing no more, and
// possibly as a duplicate) until the session closes.
type phase struct {
	s       *session
	idx     int
	spec    phaseSpec
	start   time.Time
	warmEnd time.Time

	mu          sync.Mutex
	cmds        []cmdState
	awaiting    int // accepted, result not yet here
	all, meas   counts
	e2e, e2eRaw *hdrhistogram.Histogram
	acc, accRaw *hdrhistogram.Histogram
	window      *hdrhistogram.Histogram // completions since the last progress line
	tl          timeline
	samples     *reservoir
	errs        map[string]int
	measFrom    time.Time // first measured command's due time
	lastDue     time.Time
	lastAccept  time.Time
	lastResult  time.Time
	foreignSeq  int // results with this phase's prefix but no such command
	ended       time.Time
	interrupted bool
}

func newPhase(s *session, idx int, spec phaseSpec) *phase {
	return &phase{
		s: s, idx: idx, spec: spec,
		e2e: newHist(), e2eRaw: newHist(), acc: newHist(), accRaw: newHist(), window: newHist(),
		samples: newReservoir(),
		errs:    map[string]int{},
	}
}

// run sends the phase's commands, then waits for the results still due
// (at most spec.Drain), printing progress once a second.
func (p *phase) run(ctx context.Context) {
	clock := p.s.clock
	p.start = clock.Now().Add(20 * time.Millisecond) // let every sender reach its first slot
	p.warmEnd = p.start.Add(p.spec.Warmup)
	stopProgress := p.s.progressLoop(p)
	defer stopProgress()

	var wg sync.WaitGroup
	if p.spec.open() {
		sched := Schedule{Start: p.start, Rate: p.spec.Rate, Batch: p.spec.Batch, Commands: p.spec.Commands}
		if sched.Commands == 0 {
			sched.Commands = commandsFor(p.spec.Rate, p.spec.Duration)
		}
		p.mu.Lock()
		p.cmds = make([]cmdState, sched.Commands)
		p.lastDue = sched.At(sched.Slots() - 1)
		p.mu.Unlock()
		pacer := NewPacer(sched, clock)
		for range min(p.s.cfg.HTTPWorkers, sched.Slots()) {
			wg.Go(func() { p.openSender(ctx, pacer, sched) })
		}
	} else {
		clock.SleepUntil(ctx, p.start)
		for w := range p.spec.Concurrency {
			wg.Go(func() { p.closedSender(ctx, w) })
		}
	}
	wg.Wait()
	p.drain(ctx)
	p.mu.Lock()
	p.ended = clock.Now()
	p.interrupted = ctx.Err() != nil
	p.mu.Unlock()
}

func (p *phase) openSender(ctx context.Context, pacer *Pacer, sched Schedule) {
	batch := p.spec.Batch
	for {
		slot, due, ok := pacer.Next(ctx)
		if !ok {
			return
		}
		p.submit(ctx, slot%len(p.s.devices), slot*batch, sched.SlotSize(slot), due, nil)
	}
}

// closedSender keeps one call's worth of commands outstanding: it sends,
// waits for every result (or the 202s, cashier-only), and sends again.
func (p *phase) closedSender(ctx context.Context, worker int) {
	wake := make(chan struct{}, 1)
	end := p.start.Add(p.spec.Duration)
	giveUp := p.s.cfg.Timeout + 5*time.Second // an expired command's result comes at its deadline
	for n := 0; ctx.Err() == nil; n++ {
		now := p.s.clock.Now()
		if p.spec.Commands == 0 && !now.Before(end) {
			return
		}
		first, size := p.alloc(p.spec.Batch)
		if size == 0 {
			return
		}
		p.submit(ctx, (worker+n*p.spec.Concurrency)%len(p.s.devices), first, size, now, wake)
		if p.spec.CashierOnly {
			continue
		}
		timer := time.NewTimer(giveUp)
	wait:
		for !p.done(first, size) {
			select {
			case <-wake:
			case <-timer.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		timer.Stop()
		if p.failed(first, size) {
			p.s.clock.SleepUntil(ctx, p.s.clock.Now().Add(10*time.Millisecond)) // no hot loop on a refusing cashier
		}
	}
}

// alloc reserves up to n new commands (closed loop) and returns the first seq.
func (p *phase) alloc(n int) (first, size int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first = len(p.cmds)
	size = n
	if p.spec.Commands > 0 {
		size = min(n, p.spec.Commands-first)
	}
	if size > 0 {
		p.cmds = append(p.cmds, make([]cmdState, size)...)
	}
	return first, size
}

// done reports whether commands first…first+n-1 need nothing more.
func (p *phase) done(first, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := first; i < first+n; i++ {
		c := &p.cmds[i]
		if c.status == statusPending || (c.status == 202 && c.results == 0 && !p.spec.CashierOnly) {
			return false
		}
	}
	return true
}

// failed reports whether every command of the call was refused.
func (p *phase) failed(first, n int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := first; i < first+n; i++ {
		if p.cmds[i].status == 202 {
			return false
		}
	}
	return true
}

// submit sends commands first…first+n-1 in one HTTP call to device dev.
func (p *phase) submit(ctx context.Context, dev, first, n int, due time.Time, wake chan struct{}) {
	ids := make([]string, n)
	for j := range ids {
		ids[j] = commandID(p.s.run, p.idx, first+j)
	}
	body := p.s.parts.appendBody(make([]byte, 0, n*(p.s.cfg.PayloadBytes+1)+2), ids)
	sent := p.s.clock.Now()
	p.markSent(first, n, due, sent, wake)
	status, errKey := p.s.post(ctx, dev, body)
	p.answer(first, n, status, errKey, p.s.clock.Now())
}

func (p *phase) markSent(first, n int, due, sent time.Time, wake chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	measured := !due.Before(p.warmEnd) && first >= p.spec.WarmupCount
	if measured && (p.measFrom.IsZero() || due.Before(p.measFrom)) {
		p.measFrom = due
	}
	if !p.spec.open() && due.After(p.lastDue) {
		p.lastDue = due
	}
	for i := first; i < first+n; i++ {
		p.cmds[i] = cmdState{due: due.Sub(p.start), sent: sent.Sub(p.start), measured: measured, wake: wake}
	}
	p.all.Sent += n
	if measured {
		p.meas.Sent += n
	}
	p.tl.at(p.second(sent)).Sent += n
}

// answer records the cashier's answer to one call.
func (p *phase) answer(first, n, status int, errKey string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := first; i < first+n; i++ {
		c := &p.cmds[i]
		c.status = int16(status)
		if status != 202 {
			p.all.Refused++
			if c.measured {
				p.meas.Refused++
				p.errs[errKey]++
			}
			wakeUp(c.wake)
			continue
		}
		p.all.Accepted++
		p.tl.at(p.second(at)).Accepted++
		if c.measured {
			p.meas.Accepted++
			p.lastAccept = at
			record(p.acc, at.Sub(p.start)-c.due)
			record(p.accRaw, at.Sub(p.start)-c.sent)
		}
		if p.spec.CashierOnly {
			p.complete(c, at)
			continue
		}
		if c.results == 0 {
			p.awaiting++
		}
	}
}

// onResult records a result for command seq that arrived at at; code is
// its JSON-RPC error code, or 0 for a result.
func (p *phase) onResult(seq int, at time.Time, code int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq < 0 || seq >= len(p.cmds) {
		p.foreignSeq++
		return
	}
	c := &p.cmds[seq]
	c.results++
	if c.results > 1 {
		p.all.Duplicates++
		if c.measured {
			p.meas.Duplicates++
		}
		return
	}
	if c.status == 202 {
		p.awaiting--
	}
	p.all.Results++
	p.tl.at(p.second(at)).Results++
	if c.measured {
		p.meas.Results++
		p.lastResult = at
		if code != 0 {
			p.errs[codeKey(code)]++
		}
	}
	p.complete(c, at)
	wakeUp(c.wake)
}

// complete records a finished command's latency (its result, or its 202
// when cashier-only). Call with p.mu held.
func (p *phase) complete(c *cmdState, at time.Time) {
	lat := at.Sub(p.start) - c.due
	record(p.window, lat)
	if !c.measured {
		return
	}
	record(p.e2e, lat)
	record(p.e2eRaw, at.Sub(p.start)-c.sent)
	p.tl.latency(int(c.due/time.Second), lat)
	p.samples.add(point{T: c.due.Seconds(), Latency: float64(lat) / float64(time.Millisecond)})
}

func wakeUp(ch chan struct{}) {
	if ch == nil {
		return
	}
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (p *phase) second(t time.Time) int { return int(t.Sub(p.start) / time.Second) }

// drain waits until no accepted command still awaits its result, or the
// drain time is over.
func (p *phase) drain(ctx context.Context) {
	deadline := time.Now().Add(p.spec.Drain)
	for {
		p.mu.Lock()
		waiting := p.awaiting
		p.mu.Unlock()
		if waiting <= 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// progress is the line printed once a second; it resets the window.
func (p *phase) progress(now time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := percentiles(p.window)
	p.window.Reset()
	done := p.all.Results
	if p.spec.CashierOnly {
		done = p.all.Accepted
	}
	inFlight := p.all.Sent - p.all.Refused - done
	line := fmt.Sprintf("%-8s %5.1fs  sent %d  accepted %d  results %d  in flight %d", p.spec.Name,
		now.Sub(p.start).Seconds(), p.all.Sent, p.all.Accepted, p.all.Results, inFlight)
	if p.all.Refused > 0 {
		line += fmt.Sprintf("  refused %d", p.all.Refused)
	}
	if w.Count > 0 {
		line += fmt.Sprintf("  p50 %s  p99 %s", fmtMS(w.P50), fmtMS(w.P99))
	}
	return line
}

// codeKey names a JSON-RPC error code in the errors table.
func codeKey(code int64) string {
	c := contracts.Code(code)
	return strconv.FormatInt(code, 10) + " " + c.Message()
}

// httpKey names an HTTP refusal in the errors table.
func httpKey(status int) string { return "http " + strconv.Itoa(status) }

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
