package amqplink_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

// testBatcher is a BatchHandler that keeps what it was given: the bodies
// of each batch flushed, in order. verdict decides each delivery's
// verdict (nil: Done), flush each Flush's outcome (nil: done at once).
type testBatcher struct {
	verdict func(d *amqp.Delivery) amqplink.Verdict
	flush   func(ctx context.Context, batch []string) error

	mu      sync.Mutex
	current []string
	flushed [][]string
	added   []*amqp.Delivery
}

func (b *testBatcher) Add(d *amqp.Delivery) (amqplink.Verdict, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.added = append(b.added, d)
	v := amqplink.Done()
	if b.verdict != nil {
		v = b.verdict(d)
	}
	if v.Action == amqplink.Ack {
		b.current = append(b.current, string(d.Body))
	}
	return v, 1
}

func (b *testBatcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	batch := b.current
	b.current = nil
	b.mu.Unlock()
	var err error
	if b.flush != nil {
		err = b.flush(ctx, batch)
	}
	if err == nil {
		b.mu.Lock()
		b.flushed = append(b.flushed, batch)
		b.mu.Unlock()
	}
	return err
}

func (b *testBatcher) batches() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]string(nil), b.flushed...)
}

func (b *testBatcher) deliveries() []*amqp.Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*amqp.Delivery(nil), b.added...)
}

// consumeBatches runs ConsumeBatches in the background; stop cancels it
// and waits.
func consumeBatches(t *testing.T, link *amqplink.Link, cfg amqplink.BatchConfig, h amqplink.BatchHandler) (stop func()) {
	t.Helper()
	_, stop = inBackground(t, func(ctx context.Context) error { return link.ConsumeBatches(ctx, cfg, quiet(), h) })
	return stop
}

// publishNumbered publishes n messages whose bodies are 0 to n-1.
func publishNumbered(t *testing.T, pub *amqplink.Publisher, top contracts.Topology, n int) {
	t.Helper()
	for i := range n {
		if err := publish(t, pub, top, msg(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// batchCounted is a batch config whose verdicts are counted in a registry
// of the test's own (see counted).
func batchCounted(t *testing.T, cfg amqplink.BatchConfig) (amqplink.BatchConfig, func(amqplink.Action) (n, failed float64)) {
	t.Helper()
	c, m, reg := counted(t, amqplink.ConsumerConfig{})
	cfg.Name, cfg.Metrics = c.Name, m
	return cfg, func(a amqplink.Action) (float64, float64) { return verdicts(t, reg, a) }
}

// Every message is handed to Add in the queue's order, batches are
// flushed at their size, and each is acked once flushed: the queue ends
// empty, with every message acked once.
func TestConsumeBatchesFlushesInOrderAndAcksEachBatch(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	const n = 50
	publishNumbered(t, pub, top, n)
	h := &testBatcher{}
	cfg, count := batchCounted(t, amqplink.BatchConfig{Queue: top.CommandsQueue(), Tag: "t", Size: 20, Prefetch: 30, Wait: 50 * time.Millisecond, Grace: time.Second})
	consumeBatches(t, link, cfg, h)
	brokertest.Eventually(t, 10*time.Second, "every message acked", func() bool {
		acked, _ := count(amqplink.Ack)
		return acked == n && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
	next := 0
	for i, b := range h.batches() {
		if len(b) > 20 {
			t.Errorf("batch %d of %d messages, over the size of 20", i, len(b))
		}
		for _, body := range b {
			if body != strconv.Itoa(next) {
				t.Fatalf("batch %d: message %s where %d was next: not in the queue's order", i, body, next)
			}
			next++
		}
	}
	if next != n {
		t.Errorf("%d messages flushed, want %d", next, n)
	}
	if _, failed := count(amqplink.Ack); failed != 0 {
		t.Errorf("%v failed settles", failed)
	}
}

// A poison message in the middle of a batch is rejected at once (it is in
// the dead-letter queue before the batch around it is flushed), and does
// not hold back the others: they are flushed and acked as one batch.
func TestConsumeBatchesRejectsPoisonAtOnceAndAcksTheRest(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	bodies := []string{"a", "b", "poison", "c", "d"}
	for _, body := range bodies {
		if err := publish(t, pub, top, msg(body)); err != nil {
			t.Fatal(err)
		}
	}
	var sawDead bool
	h := &testBatcher{
		verdict: func(d *amqp.Delivery) amqplink.Verdict {
			if string(d.Body) == "poison" {
				return amqplink.Poison("never valid")
			}
			return amqplink.Done()
		},
		flush: func(ctx context.Context, batch []string) error {
			// RabbitMQ dead-letters a rejected message asynchronously:
			// wait for it here, while the batch is still unacked.
			deadline := time.Now().Add(5 * time.Second)
			for !sawDead && time.Now().Before(deadline) {
				sawDead = brokertest.QueueDepth(t, top.DeadQueue()) == 1
				time.Sleep(10 * time.Millisecond)
			}
			return nil
		},
	}
	cfg, count := batchCounted(t, amqplink.BatchConfig{Queue: top.CommandsQueue(), Tag: "t", Size: 4, Prefetch: 10, Wait: time.Second, Grace: time.Second})
	consumeBatches(t, link, cfg, h)
	brokertest.Eventually(t, 10*time.Second, "the four good messages acked", func() bool {
		acked, _ := count(amqplink.Ack)
		return acked == 4 && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
	if b := h.batches(); len(b) != 1 || len(b[0]) != 4 {
		t.Fatalf("batches %v, want one of the four good messages", b)
	}
	if !sawDead {
		t.Error("the poison message was not dead-lettered while its batch was being flushed")
	}
	if rejected, failed := count(amqplink.Reject); rejected != 1 || failed != 0 {
		t.Errorf("rejected %v (failed settles %v), want 1", rejected, failed)
	}
	if n := brokertest.QueueDepth(t, top.DeadQueue()); n != 1 {
		t.Errorf("dead-letter queue holds %d, want the poison message", n)
	}
}

// A batch whose flush does not succeed (here: never, until the grace
// period after shutdown is over) is held: none of it is acked meanwhile,
// and on shutdown all of it goes back to the queue, to be delivered again
// whole to the next consumer.
func TestConsumeBatchesHandsBackABatchWhoseFlushFails(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	const n = 5
	publishNumbered(t, pub, top, n)
	flushing := make(chan struct{})
	var once sync.Once
	failing := &testBatcher{flush: func(ctx context.Context, batch []string) error {
		once.Do(func() { close(flushing) })
		<-ctx.Done() // a write that keeps failing: retried until the grace period is over
		return ctx.Err()
	}}
	cfg, count := batchCounted(t, amqplink.BatchConfig{Queue: top.CommandsQueue(), Tag: "t", Size: n, Prefetch: n, Wait: time.Second, Grace: 200 * time.Millisecond})
	stop := consumeBatches(t, link, cfg, failing)
	<-flushing
	// An ack while the batch is held would show below: counted, and the
	// queue short of n once the batch is handed back.
	begin := time.Now()
	stop()
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %v with a 200ms grace period", took)
	}
	if acked, _ := count(amqplink.Ack); acked != 0 {
		t.Fatalf("%v acked from a batch never flushed", acked)
	}
	if back, _ := count(amqplink.HandBack); back != n {
		t.Fatalf("%v handed back, want %d", back, n)
	}
	brokertest.Eventually(t, 5*time.Second, "the batch back in the queue", func() bool { return brokertest.QueueDepth(t, top.CommandsQueue()) == n })

	again := &testBatcher{}
	cfg2, count2 := batchCounted(t, amqplink.BatchConfig{Queue: top.CommandsQueue(), Tag: "t2", Size: n, Prefetch: n, Wait: time.Second, Grace: time.Second})
	consumeBatches(t, link, cfg2, again)
	brokertest.Eventually(t, 10*time.Second, "the batch delivered again and acked", func() bool {
		acked, _ := count2(amqplink.Ack)
		return acked == n && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
	})
	if b := again.batches(); len(b) != 1 || len(b[0]) != n {
		t.Errorf("delivered again as %v, want one batch of %d", b, n)
	}
	for _, d := range again.deliveries() {
		if !d.Redelivered {
			t.Errorf("message %s not marked redelivered", d.Body)
		}
	}
}
