package barista_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// Benchmarks of the barista's hot paths, without brokers. They run only on
// demand:
//
//	go test -run '^$' -bench . -benchmem ./barista/

// BenchmarkRepliesOnMessage routes a device reply to the command waiting
// for it, with that many other commands waiting too (a barista holds up to
// its concurrency, 256 by default).
func BenchmarkRepliesOnMessage(b *testing.B) {
	for _, pending := range []int{1, 256, 10_000} {
		b.Run("pending="+strconv.Itoa(pending), func(b *testing.B) {
			r := barista.NewReplies("b-bench", quiet(), nil)
			var topics []string
			var chans []<-chan []byte
			for i := range pending {
				id := contracts.NewCommandID()
				ch, done := r.Expect(id, "lamp-"+strconv.Itoa(i))
				defer done()
				topics = append(topics, contracts.ReplyTopic("lamp-"+strconv.Itoa(i), "b-bench", id))
				chans = append(chans, ch)
			}
			payload := []byte(`{"jsonrpc":"2.0","id":1,"result":true}`)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := i % pending
				r.OnMessage(topics[k], payload)
				<-chans[k]
				i++
			}
		})
	}
}

// BenchmarkRepliesOnMessageUnknown is a reply nobody waits for (late or
// repeated): counted and dropped.
func BenchmarkRepliesOnMessageUnknown(b *testing.B) {
	r := barista.NewReplies("b-bench", quiet(), nil)
	for i := range 256 {
		_, done := r.Expect(contracts.NewCommandID(), "lamp-"+strconv.Itoa(i))
		defer done()
	}
	topic := contracts.ReplyTopic("lamp-1", "b-bench", contracts.NewCommandID())
	payload := []byte(`{"jsonrpc":"2.0","id":1,"result":true}`)
	b.ReportAllocs()
	for b.Loop() {
		r.OnMessage(topic, payload)
	}
}

// echoMQTT is a broker and a device in one: a command published on a
// command topic is answered at once, on the calling goroutine, by the
// handler subscribed to replies.
type echoMQTT struct {
	mu      sync.Mutex
	replies mqttlink.Handler
	reply   []byte
}

func (m *echoMQTT) Subscribe(_ context.Context, filter string, _ byte, h mqttlink.Handler) error {
	if strings.Contains(filter, "/"+contracts.LevelReplies+"/") {
		m.mu.Lock()
		m.replies = h
		m.mu.Unlock()
	}
	return nil
}

// The benchmark's link is always up: never lost, always ready.
func (m *echoMQTT) WaitReady(context.Context) error { return nil }
func (m *echoMQTT) Lost() <-chan struct{}           { return nil }

func (m *echoMQTT) Publish(_ context.Context, msg mqttlink.Message) error {
	topic, ok := contracts.ReplyTopicFor(msg.Topic)
	m.mu.Lock()
	h := m.replies
	m.mu.Unlock()
	if ok && h != nil {
		h(topic, m.reply)
	}
	return nil
}

// confirmAll stands for the results publisher: every result is confirmed.
type confirmAll struct{}

func (confirmAll) Publish(context.Context, string, string, amqp.Publishing) error { return nil }
func (confirmAll) PublishGate() amqplink.Gate                                     { return alwaysOpen{} }

// alwaysOpen is a gate that never closes.
type alwaysOpen struct{}

func (alwaysOpen) WaitReady(context.Context) error { return nil }
func (alwaysOpen) Lost() <-chan struct{}           { return nil }

// nopAck settles deliveries without a broker.
type nopAck struct{}

func (nopAck) Ack(uint64, bool) error        { return nil }
func (nopAck) Nack(uint64, bool, bool) error { return nil }
func (nopAck) Reject(uint64, bool) error     { return nil }

// feed is the commands queue: it hands the handler n deliveries, one after
// the other, then returns. Any other queue stays empty until ctx ends.
type feed struct {
	queue string
	n     int
	next  func(i int) *amqp.Delivery
	done  chan struct{}
}

func (f *feed) Consume(ctx context.Context, cfg amqplink.ConsumerConfig, _ *slog.Logger, h amqplink.Handler) error {
	if cfg.Queue != f.queue {
		<-ctx.Done()
		return nil
	}
	defer close(f.done)
	for i := range f.n {
		h(ctx, f.next(i))
	}
	return nil
}

// BenchmarkHandle runs the barista's whole per-command path: decode and
// re-check, deadline, presence, breaker, publish to the device, route its
// reply, check it, publish the result, ack. Only the brokers are fakes.
func BenchmarkHandle(b *testing.B) {
	raw := []byte(`{"jsonrpc":"2.0","method":"echo","params":{"pad":"` + strings.Repeat("x", 110) + `"},"id":"3fa9c1.1.42"}`)
	reply := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	mq := &echoMQTT{reply: reply}
	top := contracts.DefaultTopology()
	f := &feed{queue: top.CommandsQueue(), n: b.N, done: make(chan struct{})}
	f.next = func(int) *amqp.Delivery {
		now := time.Now()
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
			MsgID: `"3fa9c1.1.42"`, Deadline: now.Add(10 * time.Second), AcceptedAt: now}
		return &amqp.Delivery{Acknowledger: nopAck{}, MessageId: meta.CommandID, Headers: meta.Headers(), Body: raw}
	}
	bar, err := barista.New(barista.Config{}, top, barista.Links{Commands: f, Results: confirmAll{}, Devices: mq}, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- bar.Run(ctx) }()
	<-f.done
	b.StopTimer()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
}
