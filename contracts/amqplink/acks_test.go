package amqplink

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeBroker plays a channel's side of acks: the outstanding tags, what
// was finished, and every ack frame received. It fails the test on what
// RabbitMQ would close the channel for (a tag acked twice or unknown) and
// on what would lose work (an ack covering a delivery still in hand).
type fakeBroker struct {
	t           *testing.T
	mu          sync.Mutex
	outstanding map[uint64]bool
	finished    map[uint64]bool // its handler returned Done
	frames      []string
	acked       int
}

func newFakeBroker(t *testing.T, n int) *fakeBroker {
	b := &fakeBroker{t: t, outstanding: map[uint64]bool{}, finished: map[uint64]bool{}}
	for tag := uint64(1); tag <= uint64(n); tag++ {
		b.outstanding[tag] = true
	}
	return b
}

func (b *fakeBroker) ack(tag uint64, multiple bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.frames = append(b.frames, fmt.Sprintf("ack %d multiple=%v", tag, multiple))
	if !b.outstanding[tag] {
		b.t.Errorf("ack of tag %d, which is not outstanding: RabbitMQ would close the channel", tag)
	}
	for t := range b.outstanding {
		if t == tag || (multiple && t < tag) {
			if !b.finished[t] {
				b.t.Errorf("ack %d (multiple=%v) covers tag %d, still in hand: its work could be lost", tag, multiple, t)
			}
			delete(b.outstanding, t)
			b.acked++
		}
	}
	return nil
}

// nack settles tag on its own, as settle does for Requeue and Reject.
func (b *fakeBroker) nack(tag uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.outstanding, tag)
}

func (b *fakeBroker) finish(tag uint64) {
	b.mu.Lock()
	b.finished[tag] = true
	b.mu.Unlock()
}

func (b *fakeBroker) framesSent() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.frames)
}

func noFail(t *testing.T) func(error) { return func(err error) { t.Errorf("ack failed: %v", err) } }

func addAll(a *acks, n int) {
	for tag := uint64(1); tag <= uint64(n); tag++ {
		a.add(tag)
	}
}

// manualAcks is an acks whose ticks the test makes.
func manualAcks(t *testing.T, b *fakeBroker, n int) *acks {
	a := newAcks(b.ack, noFail(t))
	a.wait = time.Hour
	addAll(a, n)
	return a
}

func (b *fakeBroker) wantFrames(t *testing.T, when string, want ...string) {
	t.Helper()
	if f := b.framesSent(); !slices.Equal(f, want) {
		t.Fatalf("%s: frames %q, want %q", when, f, want)
	}
}

// finishAll has each tag's handler return Done, in the order given.
func finishAll(b *fakeBroker, a *acks, tags ...uint64) {
	for _, tag := range tags {
		b.finish(tag)
		_ = a.done(tag)
	}
}

func TestAcksCoverARunWithOneFrame(t *testing.T) {
	b := newFakeBroker(t, 4)
	a := manualAcks(t, b, 4)
	finishAll(b, a, 2, 1, 3)
	b.wantFrames(t, "before the tick") // nothing is sent at once
	a.tick()
	b.wantFrames(t, "after the tick", "ack 3 multiple=true")
	finishAll(b, a, 4)
	a.tick()
	b.wantFrames(t, "after the second tick", "ack 3 multiple=true", "ack 4 multiple=true")
}

func TestAcksTickOnItsOwn(t *testing.T) {
	b := newFakeBroker(t, 1)
	a := newAcks(b.ack, noFail(t))
	a.wait = time.Millisecond
	a.add(1)
	finishAll(b, a, 1)
	deadline := time.Now().Add(5 * time.Second)
	for len(b.framesSent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.wantFrames(t, "after the hold", "ack 1 multiple=true")
}

func TestAcksNackedInTheMiddleAreNotAcked(t *testing.T) {
	b := newFakeBroker(t, 3)
	a := manualAcks(t, b, 3)
	finishAll(b, a, 3)
	b.nack(2)
	a.settledAlone(2)
	b.nack(1)
	a.settledAlone(1)
	a.tick()
	b.wantFrames(t, "after the tick", "ack 3 multiple=true") // the fake broker checks it covers no nacked tag
}

// A finished delivery behind a slow one waits one tick, then is acked on
// its own.
func TestAcksHeldBehindASlowOneAreAckedAlone(t *testing.T) {
	b := newFakeBroker(t, 3)
	a := manualAcks(t, b, 3)
	finishAll(b, a, 2)
	a.tick()
	b.wantFrames(t, "first tick, 1 in hand")
	a.tick()
	b.wantFrames(t, "second tick, 1 in hand", "ack 2 multiple=false")
	finishAll(b, a, 1) // its ack must not cover 2 again
	finishAll(b, a, 3)
	a.tick()
	b.wantFrames(t, "after 1 finished", "ack 2 multiple=false", "ack 3 multiple=true")
}

func TestAcksCloseSendsWhatIsWaiting(t *testing.T) {
	b := newFakeBroker(t, 4)
	a := manualAcks(t, b, 4)
	finishAll(b, a, 1, 2, 4)
	a.alone() // 3 still in hand (shutdown's grace ran out): it goes back with the channel
	b.wantFrames(t, "after close", "ack 2 multiple=true", "ack 4 multiple=false")
}

func TestAcksFailureIsReported(t *testing.T) {
	var failed []error
	gone := errors.New("channel closed")
	a := newAcks(func(uint64, bool) error { return gone }, func(err error) { failed = append(failed, err) })
	a.wait = time.Hour
	addAll(a, 3)
	_ = a.done(1)
	_ = a.done(3)
	a.alone()
	if len(failed) != 1 || !errors.Is(failed[0], gone) {
		t.Fatalf("failures %v, want the channel's error once", failed)
	}
}

// Handlers finishing in any order, concurrently, some requeued: every
// finished delivery is acked exactly once, none while in hand (the fake
// broker checks), and with fewer frames than deliveries.
func TestAcksConcurrentRandomOrder(t *testing.T) {
	const n = 2000
	b := newFakeBroker(t, n)
	a := newAcks(b.ack, noFail(t))
	a.wait = 200 * time.Microsecond
	addAll(a, n)
	tags := make(chan uint64)
	nacked := 0
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for tag := range tags {
				time.Sleep(time.Duration(rng.IntN(50)) * time.Microsecond)
				if rng.IntN(20) == 0 {
					b.nack(tag)
					a.settledAlone(tag)
					mu.Lock()
					nacked++
					mu.Unlock()
					continue
				}
				b.finish(tag)
				a.done(tag)
			}
		})
	}
	for tag := uint64(1); tag <= n; tag++ {
		tags <- tag
	}
	close(tags)
	wg.Wait()
	a.alone()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.outstanding) != 0 || b.acked != n-nacked {
		t.Fatalf("%d outstanding, %d acked; want every one of the %d finished acked", len(b.outstanding), b.acked, n-nacked)
	}
	if len(b.frames) >= n-nacked {
		t.Errorf("%d ack frames for %d deliveries: nothing was coalesced", len(b.frames), n-nacked)
	}
	t.Logf("%d deliveries (%d requeued): %d ack frames", n, nacked, len(b.frames))
}

// After alone (the consumer is being cancelled) no multiple ack is sent:
// what waited goes at once, and each later one on its own.
func TestAcksAloneSendsSingleAcksOnly(t *testing.T) {
	b := newFakeBroker(t, 4)
	a := manualAcks(t, b, 4)
	finishAll(b, a, 1)
	a.alone()
	b.wantFrames(t, "after alone", "ack 1 multiple=true") // before the cancel: allowed
	for _, tag := range []uint64{3, 2, 4} {
		b.finish(tag)
		if err := a.done(tag); err != nil {
			t.Fatal(err)
		}
	}
	a.tick()
	b.wantFrames(t, "after alone and a tick", "ack 1 multiple=true", "ack 3 multiple=false", "ack 2 multiple=false", "ack 4 multiple=false")
	if len(a.order) != 0 || len(a.state) != 0 {
		t.Fatalf("order %v, state %v: want both empty once everything is acked", a.order, a.state)
	}
}
