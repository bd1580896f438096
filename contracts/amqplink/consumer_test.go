package amqplink_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

// consume runs Consume in the background; stop cancels it and waits.
func consume(t *testing.T, link *amqplink.Link, cfg amqplink.ConsumerConfig, h amqplink.Handler) (stop func()) {
	t.Helper()
	_, stop = consumeCtx(t, link, cfg, h)
	return stop
}

// consumeCtx is consume that also returns the context Consume runs in:
// done once stop has begun the shutdown.
func consumeCtx(t *testing.T, link *amqplink.Link, cfg amqplink.ConsumerConfig, h amqplink.Handler) (ctx context.Context, stop func()) {
	t.Helper()
	return inBackground(t, func(ctx context.Context) error { return link.Consume(ctx, cfg, quiet(), h) })
}

// inBackground runs run until stop (or the end of the test) cancels its
// context, and returns that context and stop, which waits for run.
func inBackground(t *testing.T, run func(ctx context.Context) error) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx); err != nil {
			t.Errorf("consume: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return ctx, stop
}

// counted is a consumer config whose verdicts and failed settles are
// counted in a registry of the test's own.
func counted(t *testing.T, cfg amqplink.ConsumerConfig) (amqplink.ConsumerConfig, *amqplink.ConsumerMetrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := amqplink.NewConsumerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Name, cfg.Metrics = "test", m
	m.Start("test")
	return cfg, m, reg
}

// verdicts reads the count of verdict v of the test consumer, and the
// count of failed settles.
func verdicts(t *testing.T, reg *prometheus.Registry, v amqplink.Action) (n, failed float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case mf.GetName() == "cafe_deliveries_total" && labels["verdict"] == v.String():
				n = m.GetCounter().GetValue()
			case mf.GetName() == "cafe_settle_failures_total":
				failed = m.GetCounter().GetValue()
			}
		}
	}
	return n, failed
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
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 4, Grace: time.Second})
	consume(t, link, cfg, func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		handled.Add(1)
		return amqplink.Done()
	})
	brokertest.Eventually(t, 10*time.Second, "not every message was acked", func() bool {
		acked, _ := verdicts(t, reg, amqplink.Ack)
		return acked == n && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
	if p := peak.Load(); p > 4 || p < 2 {
		t.Fatalf("peak concurrency %d, want between 2 and the configured 4", p)
	}
	if handled.Load() != n {
		t.Fatalf("handled %d of %d", handled.Load(), n)
	}
}

// TestVerdictsAreSettled: each verdict does to the message what it says.
func TestVerdictsAreSettled(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	var requeued atomic.Int64
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 2, Grace: time.Second})
	consume(t, link, cfg, func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
		switch string(d.Body) {
		case "poison":
			return amqplink.Poison("never valid")
		case "again":
			if requeued.Add(1) == 1 {
				return amqplink.Retry("not now")
			}
		}
		return amqplink.Done()
	})
	for _, body := range []string{"ok", "poison", "again"} {
		if err := publish(t, pub, top, msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 10*time.Second, "the requeued message did not come back", func() bool { return requeued.Load() == 2 })
	brokertest.Eventually(t, 5*time.Second, "the rejected message is not in the dead-letter queue", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 1 && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
	for _, want := range []struct {
		v amqplink.Action
		n float64
	}{{amqplink.Ack, 2}, {amqplink.Reject, 1}, {amqplink.Requeue, 1}, {amqplink.HandBack, 0}} {
		if n, failed := verdicts(t, reg, want.v); n != want.n || failed != 0 {
			t.Errorf("%s: counted %v (failed settles %v), want %v", want.v, n, failed, want.n)
		}
	}
}

func TestConsumeResumesAfterConnectionLoss(t *testing.T) {
	proxy, u := viaProxy(t)
	top := brokertest.Topology(t)
	link, pub := startLink(t, u, top)
	waitReady(t, pub)
	var handled atomic.Int64
	consume(t, link, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 2, Grace: time.Second},
		func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
			handled.Add(1)
			return amqplink.Done()
		})
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, "first message not consumed", func() bool { return handled.Load() == 1 })
	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link did not notice the cut", func() bool { return !link.Ready() })
	proxy.Restore()
	waitReady(t, pub)
	for range 5 {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 10*time.Second, "consumer did not resume after reconnect", func() bool {
		return handled.Load() >= 6 && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
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
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 1, Grace: 200 * time.Millisecond})
	stop := consume(t, link, cfg, func(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
		close(started)
		<-ctx.Done() // a handler that would never finish on its own
		sawCancel.Store(true)
		return amqplink.GiveBack("shutting down")
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
	brokertest.Eventually(t, 5*time.Second, "the unfinished delivery did not go back to the queue", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 1
	})
	if n, _ := verdicts(t, reg, amqplink.HandBack); n != 1 {
		t.Fatalf("counted %v hand_back verdicts, want 1", n)
	}
}

func TestConsumeShutdownLetsHandlersFinishWithinGrace(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 1, Grace: 5 * time.Second})
	var shutdown context.Context
	var ready sync.WaitGroup
	ready.Add(1)
	shutdown, stop := consumeCtx(t, link, cfg, func(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
		close(started)
		ready.Wait()
		<-shutdown.Done() // it finishes only once shutdown has begun, well within the grace period
		return amqplink.Done()
	})
	ready.Done()
	<-started
	stop()
	if acked, failed := verdicts(t, reg, amqplink.Ack); acked != 1 || failed != 0 {
		t.Fatalf("acked %v, failed settles %v: a handler that finished within the grace period could not ack", acked, failed)
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
	holding, release := make(chan struct{}), make(chan struct{})
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 2, Grace: time.Second, Gates: []amqplink.Gate{gate}})
	consume(t, link, cfg, func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
		if string(d.Body) == "hold" {
			close(holding)
			<-release // keeps it in hand across the pause
		}
		handled.Add(1)
		return amqplink.Done()
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
	<-holding

	gate.set(false)
	for range 3 {
		if err := publish(t, pub, top, msg("while closed")); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "messages taken while the gate was closed", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 3
	})
	close(release)
	brokertest.Eventually(t, 5*time.Second, "the delivery held across the pause was not acked", func() bool {
		acked, failed := verdicts(t, reg, amqplink.Ack)
		return acked == 2 && failed == 0
	})
	if handled.Load() != 2 {
		t.Fatalf("handled %d while closed", handled.Load()-2)
	}
	gate.set(true)
	brokertest.Eventually(t, 5*time.Second, "consumption did not resume", func() bool { return handled.Load() == 5 })
}

// TestConsumeAcksEveryFinishedDeliveryOutOfOrder: handlers finish in any
// order and their acks are coalesced; once the consumer has stopped (its
// channel closed, which would return any unacked delivery to the queue)
// nothing comes back but the one delivery still in hand at shutdown.
func TestConsumeAcksEveryFinishedDeliveryOutOfOrder(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	const n = 300
	for i := range n {
		body := "{}"
		if i == 0 {
			body = "slow" // the oldest delivery stays in hand: the others' acks cannot cover it
		}
		if err := publish(t, pub, top, msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	var handled atomic.Int64
	cfg, _, reg := counted(t, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "t", Concurrency: 16, Grace: 100 * time.Millisecond})
	stop := consume(t, link, cfg, func(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
		if string(d.Body) == "slow" {
			<-ctx.Done()
			return amqplink.GiveBack("shutting down")
		}
		time.Sleep(time.Duration(d.DeliveryTag%5) * time.Millisecond) // finish out of order
		handled.Add(1)
		return amqplink.Done()
	})
	brokertest.Eventually(t, 20*time.Second, "not every delivery was handled", func() bool { return handled.Load() == n-1 })
	stop()
	brokertest.Eventually(t, 10*time.Second, "the stopped consumer is still on the queue", func() bool {
		return brokertest.Consumers(t, top.CommandsQueue()) == 0 // what it held is requeued by then
	})
	if d := brokertest.QueueDepth(t, top.CommandsQueue()); d != 1 {
		t.Fatalf("%d messages back in the queue after the consumer stopped, want only the one in hand (the rest acked)", d)
	}
	if acked, failed := verdicts(t, reg, amqplink.Ack); acked != n-1 || failed != 0 {
		t.Fatalf("counted %v acks, %v failed settles; want %d and none", acked, failed, n-1)
	}
}
