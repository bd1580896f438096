package caller_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// fakeMQTT is the MQTT broker as the caller sees it: connected or not,
// taking publishes or failing them, recording what it took.
type fakeMQTT struct {
	brokertest.Open
	down    bool  // WaitConnected waits until its context ends
	failing error // Publish returns this

	mu   sync.Mutex
	sent []mqttlink.Message
}

var _ caller.MQTT = (*fakeMQTT)(nil)

func (m *fakeMQTT) WaitConnected(ctx context.Context) error {
	if m.down {
		<-ctx.Done()
		return mqttlink.ErrNotConnected
	}
	return nil
}

func (m *fakeMQTT) Publish(_ context.Context, msg mqttlink.Message) error {
	if m.failing != nil {
		return m.failing
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sent = append(m.sent, msg)
	return nil
}

func resultDelivery(clientID any, body string) *amqp.Delivery {
	// The older form of the headers, one per field, which the caller still
	// reads: it lets a test give the client id any value and type.
	h := map[string]any{contracts.HeaderClientID: clientID, contracts.HeaderMsgID: "1",
		contracts.HeaderAcceptedAt: time.Now().UnixNano(), contracts.HeaderOutcome: string(contracts.OutcomeReply)}
	return &amqp.Delivery{MessageId: contracts.NewCommandID(), UserId: string(identity.Barista), Headers: h, Body: []byte(body)}
}

// deadCommand is a dead-lettered command as RabbitMQ copies it to the
// notify queue: the cashier's message (user-id and headers) with x-death.
func deadCommand(top contracts.Topology, body, msgID, reason string) *amqp.Delivery {
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", MsgID: msgID,
		Deadline: time.Now().Add(time.Minute), AcceptedAt: time.Now()}
	h := amqp.Table(meta.Headers())
	h["x-death"] = []any{amqp.Table{"queue": top.CommandsQueue(), "reason": reason, "exchange": top.CommandsExchange(), "count": int64(1)}}
	return &amqp.Delivery{MessageId: meta.CommandID, UserId: string(identity.Cashier), Headers: h, Body: []byte(body)}
}

// withUser is d with the AMQP user-id user (RabbitMQ's check: its publisher).
func withUser(d *amqp.Delivery, user string) *amqp.Delivery {
	d.UserId = user
	return d
}

// TestAckPolicy runs one delivery through a caller with stand-in brokers
// and checks the verdict (what the consumer settles) and what reached the
// app's topic.
func TestAckPolicy(t *testing.T) {
	top := contracts.DefaultTopology()
	ok := `{"jsonrpc":"2.0","id":1,"result":true}`
	for _, tc := range []struct {
		name    string
		queue   string
		d       *amqp.Delivery
		mqtt    *fakeMQTT
		want    amqplink.Action
		topic   string // where something was published ("" for nothing)
		payload string // what, if not the delivery's body
	}{
		{name: "delivered", queue: top.ResultsQueue(), d: resultDelivery("app-1", ok), mqtt: &fakeMQTT{}, want: amqplink.Ack, topic: "clients/app-1/results"},
		{name: "no client id", queue: top.ResultsQueue(), d: resultDelivery(nil, ok), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "wildcard client id", queue: top.ResultsQueue(), d: resultDelivery("app/#", ok), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "client id of the wrong type", queue: top.ResultsQueue(), d: resultDelivery(42, ok), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "body not a JSON object", queue: top.ResultsQueue(), d: resultDelivery("app-1", "[1]"), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "oversized body", queue: top.ResultsQueue(), d: resultDelivery("app-1", `{"p":"`+strings.Repeat("x", contracts.MaxResultBytes)+`"}`), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "no PUBACK", queue: top.ResultsQueue(), d: resultDelivery("app-1", ok), mqtt: &fakeMQTT{failing: errors.New("timeout")}, want: amqplink.Requeue},
		{name: "MQTT down past the wait", queue: top.ResultsQueue(), d: resultDelivery("app-1", ok), mqtt: &fakeMQTT{down: true}, want: amqplink.Requeue},
		{name: "notice for a dead command", queue: top.DeadNotifyQueue(), d: deadCommand(top, `{"jsonrpc":"2.0","method":"m","id":"c-7"}`, `"c-7"`, "delivery_limit"),
			mqtt: &fakeMQTT{}, want: amqplink.Ack, topic: "clients/app-1/results", payload: `"code":-32005`},
		{name: "no notice for a one-way command", queue: top.DeadNotifyQueue(), d: deadCommand(top, `{"jsonrpc":"2.0","method":"m"}`, "", "rejected"),
			mqtt: &fakeMQTT{}, want: amqplink.Ack},
		{name: "no notice for a dead result", queue: top.DeadNotifyQueue(), d: resultDelivery("app-1", ok), mqtt: &fakeMQTT{}, want: amqplink.Ack},
		{name: "result without a publisher", queue: top.ResultsQueue(), d: withUser(resultDelivery("app-1", ok), ""), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "result published by a cashier, not a barista", queue: top.ResultsQueue(), d: withUser(resultDelivery("app-1", ok), string(identity.Cashier)), mqtt: &fakeMQTT{}, want: amqplink.Reject},
		{name: "result replayed by cafe-ops", queue: top.ResultsQueue(), d: withUser(resultDelivery("app-1", ok), string(identity.Ops)), mqtt: &fakeMQTT{}, want: amqplink.Ack, topic: "clients/app-1/results"},
		{name: "no notice for a forged command", queue: top.DeadNotifyQueue(), d: withUser(deadCommand(top, `{"jsonrpc":"2.0","method":"m","id":"c-8"}`, `"c-8"`, "rejected"), "intruder"),
			mqtt: &fakeMQTT{}, want: amqplink.Ack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := deliverOne(context.Background(), t, tc.queue, tc.d, tc.mqtt)
			if v.Action != tc.want {
				t.Fatalf("verdict %s (%s), want %s", v.Action, v.Reason, tc.want)
			}
			sent := tc.mqtt.sent
			switch {
			case tc.topic == "" && len(sent) != 0:
				t.Fatalf("published %d messages, want none", len(sent))
			case tc.topic == "":
			case len(sent) != 1 || sent[0].Topic != tc.topic || sent[0].QoS != 1:
				t.Fatalf("published %+v, want one QoS 1 message on %s", sent, tc.topic)
			case tc.payload == "" && string(sent[0].Payload) != string(tc.d.Body):
				t.Fatalf("published %s, want the result unchanged", sent[0].Payload)
			case !strings.Contains(string(sent[0].Payload), tc.payload):
				t.Fatalf("published %s, want it to contain %s", sent[0].Payload, tc.payload)
			}
		})
	}
}

// TestAckPolicyShutdownHandsBack: a result held while MQTT is down goes
// back to the queue as GiveBack when the caller stops.
func TestAckPolicyShutdownHandsBack(t *testing.T) {
	top := contracts.DefaultTopology()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond) // within the caller's 50ms wait for MQTT
	defer cancel()
	v := deliverOne(ctx, t, top.ResultsQueue(), resultDelivery("app-1", `{"jsonrpc":"2.0","id":1,"result":1}`), &fakeMQTT{down: true})
	if v.Action != amqplink.HandBack {
		t.Fatalf("verdict %s (%s), want hand_back", v.Action, v.Reason)
	}
}

func deliverOne(ctx context.Context, t *testing.T, queue string, d *amqp.Delivery, mq *fakeMQTT) amqplink.Verdict {
	t.Helper()
	feed := brokertest.NewFeed(queue, 1, func(int) *amqp.Delivery { return d })
	c, err := caller.New(caller.Config{WaitMQTT: 50 * time.Millisecond}, contracts.DefaultTopology(),
		caller.Links{Results: feed, MQTT: mq}, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if err := feed.Drive(ctx, c.Run); err != nil {
		t.Fatal(err)
	}
	return feed.Verdicts()[0]
}

// BenchmarkDeliver runs the caller's whole per-result path without brokers:
// decode the headers, check the body, publish it to the app's results
// topic (a fake broker that acknowledges at once), ack. It runs only on
// demand:
//
//	go test -run '^$' -bench . -benchmem ./caller/
func BenchmarkDeliver(b *testing.B) { benchDeliver(b, nil) }

// BenchmarkDeliverWithEvents is BenchmarkDeliver with a ledger's
// "delivered" events posted (to a stand-in that keeps them): what cafe up
// --ledgers 0 saves.
func BenchmarkDeliverWithEvents(b *testing.B) { benchDeliver(b, &brokertest.Posted{}) }

func benchDeliver(b *testing.B, events caller.EventPoster) {
	body := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	headers := contracts.ResultMeta{ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"3fa9c1.1.42"`,
		AcceptedAt: time.Now(), Outcome: contracts.OutcomeReply}.Headers()
	top := contracts.DefaultTopology()
	results := brokertest.NewFeed(top.ResultsQueue(), b.N, func(int) *amqp.Delivery {
		return &amqp.Delivery{MessageId: contracts.NewCommandID(), UserId: string(identity.Barista), Headers: headers, Body: body}
	})
	links := caller.Links{Results: results, MQTT: acceptAll{}}
	if events != nil {
		links.Events = events
	}
	c, err := caller.New(caller.Config{}, top, links, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := results.Drive(context.Background(), c.Run); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	for _, v := range results.Verdicts() {
		if v.Action != amqplink.Ack {
			b.Fatalf("a result ended %s (%s), not delivered: the benchmark measured a refusal", v.Action, v.Reason)
		}
	}
}

// acceptAll is an MQTT broker that acknowledges every publish at once.
type acceptAll struct{ brokertest.Open }

var _ caller.MQTT = acceptAll{}

func (acceptAll) WaitConnected(context.Context) error             { return nil }
func (acceptAll) Publish(context.Context, mqttlink.Message) error { return nil }
