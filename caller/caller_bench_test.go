package caller_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// BenchmarkDeliver runs the caller's whole per-result path without brokers:
// decode the headers, check the body, publish it to the app's results
// topic (a fake broker that acknowledges at once), ack. It runs only on
// demand:
//
//	go test -run '^$' -bench . -benchmem ./caller/
func BenchmarkDeliver(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	headers := contracts.ResultMeta{ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"3fa9c1.1.42"`,
		AcceptedAt: time.Now(), Outcome: contracts.OutcomeReply}.Headers()
	top := contracts.DefaultTopology()
	results := &resultFeed{queue: top.ResultsQueue(), n: b.N, done: make(chan struct{}), next: func() *amqp.Delivery {
		return &amqp.Delivery{Acknowledger: ackAll{}, MessageId: contracts.NewCommandID(), Headers: headers, Body: body}
	}}
	c, err := caller.New(caller.Config{}, top, results, acceptAll{}, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	<-results.done
	b.StopTimer()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
}

// resultFeed hands the caller n results one after the other; any other
// queue the caller consumes stays empty.
type resultFeed struct {
	queue string
	n     int
	next  func() *amqp.Delivery
	done  chan struct{}
}

func (f *resultFeed) Consume(ctx context.Context, cfg amqplink.ConsumerConfig, _ *slog.Logger, h amqplink.Handler) error {
	if cfg.Queue != f.queue {
		<-ctx.Done()
		return nil
	}
	defer close(f.done)
	for range f.n {
		h(ctx, f.next())
	}
	return nil
}

// acceptAll is an MQTT broker that acknowledges every publish at once.
type acceptAll struct{}

func (acceptAll) WaitConnected(context.Context) error             { return nil }
func (acceptAll) Publish(context.Context, mqttlink.Message) error { return nil }
func (acceptAll) WaitReady(context.Context) error                 { return nil }
func (acceptAll) Lost() <-chan struct{}                           { return nil }

type ackAll struct{}

func (ackAll) Ack(uint64, bool) error        { return nil }
func (ackAll) Nack(uint64, bool, bool) error { return nil }
func (ackAll) Reject(uint64, bool) error     { return nil }
