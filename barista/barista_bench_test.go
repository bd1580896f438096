package barista_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/brokertest"
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

// BenchmarkHandle runs the barista's whole per-command path: decode and
// re-check, deadline, presence, breaker, publish to the device, route its
// reply, check it, publish the result, return the verdict. Only the
// brokers are fakes.
func BenchmarkHandle(b *testing.B) {
	raw := []byte(`{"jsonrpc":"2.0","method":"echo","params":{"pad":"` + strings.Repeat("x", 110) + `"},"id":"3fa9c1.1.42"}`)
	reply := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	mq := &scriptedMQTT{reply: reply}
	top := contracts.DefaultTopology()
	f := brokertest.NewFeed(top.CommandsQueue(), b.N, func(int) *amqp.Delivery {
		now := time.Now()
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
			MsgID: `"3fa9c1.1.42"`, Deadline: now.Add(10 * time.Second), AcceptedAt: now}
		return &amqp.Delivery{MessageId: meta.CommandID, Headers: meta.Headers(), Body: raw}
	})
	bar, err := barista.New(barista.Config{}, top, barista.Links{Commands: f, Results: &brokertest.Confirming{}, Devices: mq}, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := f.Drive(context.Background(), bar.Run); err != nil {
		b.Fatal(err)
	}
}
