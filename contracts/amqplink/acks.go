package amqplink

import (
	"sync"
	"time"
)

// ackHold is how long an ack may wait to be sent together with others.
// Nothing waits for an ack (the work it acknowledges is already durable),
// so delaying it costs only a prefetch slot held that much longer, and
// after a crash a redelivery of work that was done (allowed: consumers and
// apps dedupe).
const ackHold = 5 * time.Millisecond

// Tag states in acks.state; a tag that is absent is still in a handler's
// hands.
const (
	fresh   = iota + 1 // Done since the last tick: to be acked
	aged               // Done before the last tick, still behind one in hand: acked on its own at the next tick
	settled            // nacked or rejected, or acked on its own
)

// acks coalesces the acks of one channel's deliveries into basic.ack with
// multiple=true, which acknowledges every delivery up to a tag at once.
//
// Why: every basic.ack is a frame RabbitMQ parses and, on a quorum queue,
// a settle command the queue's Raft log writes and replicates; one ack for
// a run of deliveries costs about what one ack for a single one does.
//
// How: a finished delivery is not acked at once. Every ackHold while
// finished deliveries wait (a tick), one ack with multiple=true covers the
// longest run of settled deliveries from the oldest on. A multiple ack may
// only cover deliveries that are finished (an ack before the work is
// durably done would lose it), so a finished delivery behind one still in
// hand waits for it, but for one tick only: at the next it is acked on its
// own, and a slow command never holds back the others' acks. Deliveries
// that are requeued or rejected are settled on their own at once, as
// before. Acks still waiting when the channel dies are lost with it, and
// RabbitMQ delivers those messages again, as it would after a crash.
type acks struct {
	ack  func(tag uint64, multiple bool) error // the channel's basic.ack
	fail func(err error)                       // told of an ack that failed
	wait time.Duration

	mu     sync.Mutex
	order  []uint64         // tags delivered and not yet covered, in delivery order (ascending)
	state  map[uint64]uint8 // fresh, aged or settled; absent: in hand
	held   int              // tags in state fresh or aged
	timer  *time.Timer      // the next tick; nil until first needed
	armed  bool             // timer is running
	single bool             // no more multiple acks: see alone
}

func newAcks(ack func(tag uint64, multiple bool) error, fail func(error)) *acks {
	return &acks{ack: ack, state: map[uint64]uint8{}, fail: fail, wait: ackHold}
}

// add records a delivery, before its handler gets it. Deliveries are added
// in the order the channel delivered them.
func (a *acks) add(tag uint64) {
	a.mu.Lock()
	a.order = append(a.order, tag)
	a.mu.Unlock()
}

// done marks tag finished: it is acked at the next tick, or at once after
// alone (then the error is the ack's).
func (a *acks) done(tag uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.single {
		a.state[tag] = settled
		a.advance()
		return a.ack(tag, false)
	}
	a.state[tag] = fresh
	a.held++
	if !a.armed {
		if a.timer == nil {
			a.timer = time.AfterFunc(a.wait, a.tick)
		} else {
			a.timer.Reset(a.wait)
		}
		a.armed = true
	}
	return nil
}

// settledAlone records that tag was settled on its own (nacked, rejected).
func (a *acks) settledAlone(tag uint64) {
	a.mu.Lock()
	a.state[tag] = settled
	if a.single {
		a.advance()
	}
	a.mu.Unlock()
}

// alone sends every ack waiting and makes every later one a single ack,
// sent at once, for the rest of the channel's life. It is called before
// the channel's consumer is cancelled (pause, shutdown): RabbitMQ 3.10
// closes the channel with INTERNAL_ERROR on a multiple ack that follows a
// basic.cancel on a quorum queue (single acks are fine), which would
// requeue every delivery in hand.
func (a *acks) alone() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.armed {
		a.timer.Stop()
		a.armed = false
	}
	for _, t := range a.order {
		if a.state[t] == fresh {
			a.state[t] = aged // acked below, on its own if need be
		}
	}
	a.tickLocked()
	a.single = true
}

// tick sends the acks due: one multiple ack for the settled run from the
// oldest delivery, then, on their own, those that already waited a tick
// behind one still in hand.
func (a *acks) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.armed = false
	if a.single {
		return // alone sent everything
	}
	a.tickLocked()
	if a.held > 0 {
		a.timer.Reset(a.wait)
		a.armed = true
	}
}

// tickLocked is tick with a.mu held. The acks are sent with a.mu held, so
// they reach the channel in the order they were decided: a multiple ack
// never overtakes a single ack of a tag it covers (RabbitMQ closes the
// channel on a tag acked twice).
func (a *acks) tickLocked() {
	var err error
	if upTo := a.advance(); upTo != 0 {
		err = a.ack(upTo, true)
	}
	for _, t := range a.order {
		switch a.state[t] {
		case fresh:
			a.state[t] = aged
		case aged:
			a.state[t] = settled
			a.held--
			if err == nil { // after a failure the channel is gone: the rest go back to the queue with it
				err = a.ack(t, false)
			}
		}
	}
	if err != nil {
		a.fail(err)
	}
}

// advance drops the settled run at the front of order and returns the
// highest finished tag in it (0: none). a.mu is held.
func (a *acks) advance() (upTo uint64) {
	i := 0
	for ; i < len(a.order); i++ {
		t := a.order[i]
		s, ok := a.state[t]
		if !ok {
			break
		}
		if s != settled {
			upTo = t
			a.held--
		}
		delete(a.state, t)
	}
	a.order = a.order[i:]
	return upTo
}
