package barista_test

import (
	"context"
	"encoding/json"
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
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// refusing is a results publisher whose publishes are never confirmed.
type refusing struct{}

func (refusing) Publish(context.Context, string, string, amqp.Publishing) error {
	return amqplink.ErrConfirmLost
}
func (refusing) PublishGate() amqplink.Gate { return brokertest.Open{} }

// delivery is a command as the cashier queues it (published as
// cafe-cashier), with body and a deadline d from now; edit, if set,
// changes it before it is handed over.
func delivery(body string, d time.Duration, edit func(*amqp.Delivery)) *amqp.Delivery {
	req, err := contracts.ParseRequest([]byte(body))
	now := time.Now()
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
		Deadline: now.Add(d), AcceptedAt: now}
	if err == nil {
		meta.MsgID = string(req.ID)
	}
	dl := &amqp.Delivery{MessageId: meta.CommandID, UserId: string(identity.Cashier), Headers: meta.Headers(), Body: []byte(body)}
	if edit != nil {
		edit(dl)
	}
	return dl
}

// TestAckPolicy runs one delivery at a time through a barista whose
// brokers are stand-ins, and checks the verdict it returns (what the
// consumer then settles) and the result it publishes.
func TestAckPolicy(t *testing.T) {
	echo := `{"jsonrpc":"2.0","method":"echo","id":7}`
	reply := []byte(`{"jsonrpc":"2.0","id":7,"result":true}`)
	for _, tc := range []struct {
		name      string
		d         *amqp.Delivery
		mqtt      *scriptedMQTT
		refuse    bool // results are never confirmed
		want      amqplink.Action
		result    contracts.Code // 0: the device's reply; -1: no result at all
		wantInLog string         // in the verdict's reason
	}{
		{name: "device replied", d: delivery(echo, time.Minute, nil), mqtt: &scriptedMQTT{reply: reply}, want: amqplink.Ack},
		{name: "one-way command sent", d: delivery(`{"jsonrpc":"2.0","method":"echo"}`, time.Minute, nil), mqtt: &scriptedMQTT{}, want: amqplink.Ack, result: -1},
		{name: "expired", d: delivery(echo, -time.Second, nil), mqtt: &scriptedMQTT{reply: reply}, want: amqplink.Ack, result: contracts.CodeExpired},
		{name: "device silent", d: delivery(echo, 500*time.Millisecond, nil), mqtt: &scriptedMQTT{}, want: amqplink.Ack, result: contracts.CodeDeviceTimeout},
		{name: "bad reply", d: delivery(echo, time.Minute, nil), mqtt: &scriptedMQTT{reply: []byte("nope")}, want: amqplink.Ack, result: contracts.CodeBadDeviceReply},
		{name: "result not confirmed", d: delivery(echo, time.Minute, nil), mqtt: &scriptedMQTT{reply: reply}, refuse: true, want: amqplink.Requeue, result: -1, wantInLog: "result not confirmed"},
		{name: "panic while handling", d: delivery(echo, time.Minute, nil), mqtt: &scriptedMQTT{publish: func(context.Context, mqttlink.Message) error { panic("bug") }},
			want: amqplink.Requeue, result: -1, wantInLog: "panic"},
		{name: "garbage body", d: delivery("not json", time.Minute, nil), mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1, wantInLog: "not a valid command"},
		{name: "no headers", d: delivery(echo, time.Minute, func(d *amqp.Delivery) { d.Headers = nil }), mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1},
		{name: "header id lies about the body", d: delivery(echo, time.Minute, func(d *amqp.Delivery) {
			m := contracts.ReadMeta(d.Headers)
			m.MsgID = "8"
			d.Headers = m.Headers()
		}),
			mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1, wantInLog: "does not match"},
		{name: "oversized body", d: delivery(echo, time.Minute, func(d *amqp.Delivery) { d.Body = make([]byte, contracts.MaxBodyBytes+1) }),
			mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1, wantInLog: "over the"},
		{name: "no publisher: not from a cashier", d: delivery(echo, time.Minute, func(d *amqp.Delivery) { d.UserId = "" }),
			mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1, wantInLog: "no user-id"},
		{name: "published by a barista, not a cashier", d: delivery(echo, time.Minute, func(d *amqp.Delivery) { d.UserId = string(identity.Barista) }),
			mqtt: &scriptedMQTT{}, want: amqplink.Reject, result: -1, wantInLog: `published by "cafe-barista"`},
		{name: "replayed by cafe-ops", d: delivery(echo, time.Minute, func(d *amqp.Delivery) { d.UserId = string(identity.Ops) }),
			mqtt: &scriptedMQTT{reply: reply}, want: amqplink.Ack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, sent := handleOne(t, tc.d, tc.mqtt, tc.refuse)
			if v.Action != tc.want {
				t.Fatalf("verdict %s (%s), want %s", v.Action, v.Reason, tc.want)
			}
			if !strings.Contains(v.Reason, tc.wantInLog) {
				t.Errorf("reason %q does not say %q", v.Reason, tc.wantInLog)
			}
			checkResult(t, sent, tc.result, reply)
		})
	}
}

// TestAckPolicyShutdownHandsBack: a command still waiting for its device
// when the barista's grace runs out goes back to the queue as GiveBack.
func TestAckPolicyShutdownHandsBack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	mq := &scriptedMQTT{publish: func(context.Context, mqttlink.Message) error { cancel(); return nil }}
	v, sent := handleOneCtx(ctx, t, delivery(`{"jsonrpc":"2.0","method":"never","id":1}`, time.Minute, nil), mq, false)
	if v.Action != amqplink.HandBack || len(sent) != 0 {
		t.Fatalf("verdict %s (%s) with %d results, want hand_back and none", v.Action, v.Reason, len(sent))
	}
}

func handleOne(t *testing.T, d *amqp.Delivery, mq *scriptedMQTT, refuse bool) (amqplink.Verdict, []amqp.Publishing) {
	return handleOneCtx(context.Background(), t, d, mq, refuse)
}

func handleOneCtx(ctx context.Context, t *testing.T, d *amqp.Delivery, mq *scriptedMQTT, refuse bool) (amqplink.Verdict, []amqp.Publishing) {
	t.Helper()
	top := contracts.DefaultTopology()
	feed := brokertest.NewFeed(top.CommandsQueue(), 1, func(int) *amqp.Delivery { return d })
	confirming := &brokertest.Confirming{Record: true}
	var results barista.ResultPublisher = confirming
	if refuse {
		results = refusing{}
	}
	b, err := barista.New(barista.Config{Route: "b-policy", ResultTimeout: 100 * time.Millisecond}, top,
		barista.Links{Commands: feed, Results: results, Devices: mq}, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Drive(ctx, b.Run); err != nil {
		t.Fatal(err)
	}
	return feed.Verdicts()[0], confirming.Sent()
}

// checkResult checks the one result published: the device's reply (code
// 0), an error response with code, or nothing (code -1).
func checkResult(t *testing.T, sent []amqp.Publishing, code contracts.Code, reply []byte) {
	t.Helper()
	switch {
	case code == -1:
		if len(sent) != 0 {
			t.Fatalf("published %d results, want none", len(sent))
		}
		return
	case len(sent) != 1:
		t.Fatalf("published %d results, want 1", len(sent))
	case code == 0:
		if string(sent[0].Body) != string(reply) {
			t.Fatalf("result %s, want the device's reply %s unchanged", sent[0].Body, reply)
		}
		return
	}
	var resp contracts.Response
	if err := json.Unmarshal(sent[0].Body, &resp); err != nil || resp.Error == nil || resp.Error.Code != code {
		t.Fatalf("result %s, want an error %d", sent[0].Body, code)
	}
}

// Stand-ins of the barista's MQTT side, for its policy tests and benchmarks.
// scriptedMQTT plays the MQTT broker and one device: a command is answered
// with reply (if not nil) on the calling goroutine; publish, if set,
// decides what Publish returns.
type scriptedMQTT struct {
	reply   []byte
	publish func(ctx context.Context, m mqttlink.Message) error

	mu      sync.Mutex
	replies mqttlink.Handler
}

var _ barista.MQTT = (*scriptedMQTT)(nil)

func (m *scriptedMQTT) Subscribe(_ context.Context, filter string, _ byte, h mqttlink.Handler) error {
	if strings.Contains(filter, "/"+contracts.LevelReplies+"/") {
		m.mu.Lock()
		m.replies = h
		m.mu.Unlock()
	}
	return nil
}
func (m *scriptedMQTT) WaitReady(context.Context) error { return nil }
func (m *scriptedMQTT) Lost() <-chan struct{}           { return nil }

func (m *scriptedMQTT) Publish(ctx context.Context, msg mqttlink.Message) error {
	m.mu.Lock()
	h := m.replies
	m.mu.Unlock()
	if m.publish != nil {
		if err := m.publish(ctx, msg); err != nil {
			return err
		}
	}
	if topic, ok := contracts.ReplyTopicFor(msg.Topic); ok && m.reply != nil && h != nil {
		h(topic, m.reply)
	}
	return nil
}

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
// brokers are fakes. No events poster: as in cafe up --ledgers 0.
func BenchmarkHandle(b *testing.B) { benchHandle(b, nil) }

// BenchmarkHandleWithEvents is BenchmarkHandle with a ledger's "sent"
// events posted (to a stand-in that keeps them): what --ledgers 0 saves.
func BenchmarkHandleWithEvents(b *testing.B) { benchHandle(b, &brokertest.Posted{}) }

func benchHandle(b *testing.B, events barista.EventPoster) {
	raw := []byte(`{"jsonrpc":"2.0","method":"echo","params":{"pad":"` + strings.Repeat("x", 110) + `"},"id":"3fa9c1.1.42"}`)
	reply := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	mq := &scriptedMQTT{reply: reply}
	top := contracts.DefaultTopology()
	f := brokertest.NewFeed(top.CommandsQueue(), b.N, func(int) *amqp.Delivery {
		now := time.Now()
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
			MsgID: `"3fa9c1.1.42"`, Deadline: now.Add(10 * time.Second), AcceptedAt: now}
		return &amqp.Delivery{MessageId: meta.CommandID, UserId: string(identity.Cashier), Headers: meta.Headers(), Body: raw}
	})
	links := barista.Links{Commands: f, Results: &brokertest.Confirming{}, Devices: mq, Events: events}
	bar, err := barista.New(barista.Config{}, top, links, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := f.Drive(context.Background(), bar.Run); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	wantAllDone(b, f.Verdicts())
}

// wantAllDone fails a benchmark whose deliveries did not all end Done: it
// would have measured a refusal, not the path it names.
func wantAllDone(b *testing.B, vs []amqplink.Verdict) {
	b.Helper()
	for _, v := range vs {
		if v.Action != amqplink.Ack {
			b.Fatalf("a delivery ended %s (%s), not done", v.Action, v.Reason)
		}
	}
}
