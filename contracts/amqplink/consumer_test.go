package amqplink_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

// consume runs Consume in the background; stop cancels it and waits.
func consume(t *testing.T, link *amqplink.Link, cfg amqplink.ConsumerConfig, h amqplink.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := link.Consume(ctx, cfg, quiet(), h); err != nil {
			t.Errorf("consume: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func TestConsumeHandlesEveryMessageWithBoundedConcurrency(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	const n = 100
	for range n {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatal(err)
		}
	}
	var handled, inFlight, peak atomic.Int64
	consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 4, Grace: time.Second},
		func(_ context.Context, d *amqp.Delivery) {
			cur := inFlight.Add(1)
			for {
				p := peak.Load()
				if cur <= p || peak.CompareAndSwap(p, cur) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			inFlight.Add(-1)
			_ = d.Ack(false)
			handled.Add(1)
		})
	brokertest.Eventually(t, 10*time.Second, "not every message was handled", func() bool { return handled.Load() == n })
	if p := peak.Load(); p > 4 || p < 2 {
		t.Fatalf("peak concurrency %d, want between 2 and the configured 4", p)
	}
}

func TestConsumeResumesAfterConnectionLoss(t *testing.T) {
	proxy, u := viaProxy(t)
	top := brokertest.Topology(t)
	link, pub := startLink(t, u, top)
	waitReady(t, pub)

	var acked atomic.Int64
	seen := sync.Map{}
	consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 2, Grace: time.Second},
		func(_ context.Context, d *amqp.Delivery) {
			if d.Ack(false) == nil {
				seen.Store(d.MessageId, true)
				acked.Add(1)
			}
		})
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, "first message not consumed", func() bool { return acked.Load() == 1 })

	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link did not notice the cut", func() bool { return !link.Ready() })
	proxy.Restore()
	waitReady(t, pub)
	for range 5 {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 10*time.Second, "consumer did not resume after reconnect", func() bool { return acked.Load() >= 6 })
}

func TestConsumeShutdownReturnsUnfinishedDeliveries(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	var sawCancel atomic.Bool
	stop := consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 1, Grace: 200 * time.Millisecond},
		func(ctx context.Context, d *amqp.Delivery) {
			close(started)
			<-ctx.Done() // a handler that would never finish on its own
			sawCancel.Store(true)
		})
	<-started
	begin := time.Now()
	stop()
	if !sawCancel.Load() {
		t.Fatal("handler context was not cancelled after the grace period")
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %v with a 200ms grace period", took)
	}
	brokertest.Eventually(t, 5*time.Second, "the unsettled delivery did not go back to the queue", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 1
	})
}

func TestConsumeShutdownLetsHandlersFinishWithinGrace(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var acked atomic.Bool
	stop := consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 1, Grace: 5 * time.Second},
		func(ctx context.Context, d *amqp.Delivery) {
			close(started)
			time.Sleep(100 * time.Millisecond) // finishing what it holds
			acked.Store(d.Ack(false) == nil)
		})
	<-started
	stop()
	if !acked.Load() {
		t.Fatal("a handler that finished within the grace period could not ack")
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 0 {
		t.Fatalf("queue holds %d messages after a finished handler acked", n)
	}
}

// testGate is a gate the test opens and closes.
type testGate struct {
	mu   sync.Mutex
	open chan struct{} // closed while open
	lost chan struct{} // closed when lost
}

func newTestGate() *testGate {
	g := &testGate{open: make(chan struct{}), lost: make(chan struct{})}
	close(g.lost)
	return g
}

func (g *testGate) set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if open {
		close(g.open)
		g.lost = make(chan struct{})
	} else {
		g.open = make(chan struct{})
		close(g.lost)
	}
}

func (g *testGate) WaitReady(ctx context.Context) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *testGate) Lost() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lost
}

func TestConsumeTakesNothingWhileTheGateIsClosed(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	gate := newTestGate()
	var handled atomic.Int64
	held := make(chan *amqp.Delivery, 1)
	consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 2, Grace: time.Second, Gates: []amqplink.Gate{gate}},
		func(_ context.Context, d *amqp.Delivery) {
			if string(d.Body) == "hold" {
				held <- d // keeps it in hand across the pause
				return
			}
			_ = d.Ack(false)
			handled.Add(1)
		})
	if err := publish(t, pub, top, msg("before")); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, "a consumer registered with the gate closed", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 1 && handled.Load() == 0
	})

	gate.set(true)
	brokertest.Eventually(t, 5*time.Second, "nothing taken after the gate opened", func() bool { return handled.Load() == 1 })
	if err := publish(t, pub, top, msg("hold")); err != nil {
		t.Fatal(err)
	}
	d := <-held

	gate.set(false)
	for range 3 {
		if err := publish(t, pub, top, msg("while closed")); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "messages taken while the gate was closed", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 3
	})
	if err := d.Ack(false); err != nil {
		t.Fatalf("a delivery held across the pause could not be acked: %v", err)
	}
	if handled.Load() != 1 {
		t.Fatalf("handled %d while closed", handled.Load())
	}
	gate.set(true)
	brokertest.Eventually(t, 5*time.Second, "consumption did not resume", func() bool { return handled.Load() == 4 })
}
