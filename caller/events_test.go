package caller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// A delivered result is followed by a "delivered" event naming its command;
// a result that was not delivered posts none.
func TestDeliveredEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		mq   *fakeMQTT
		want int
	}{
		{"delivered", &fakeMQTT{}, 1},
		{"broker refused", &fakeMQTT{failing: context.DeadlineExceeded}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := contracts.DefaultTopology()
			d := resultDelivery("app-1", `{"jsonrpc":"2.0","id":1,"result":true}`)
			feed := brokertest.NewFeed(top.ResultsQueue(), 1, func(int) *amqp.Delivery { return d })
			ev := &brokertest.Posted{}
			c, err := caller.New(caller.Config{WaitMQTT: 50 * time.Millisecond}, top,
				caller.Links{Results: feed, MQTT: tc.mq, Events: ev}, prometheus.NewRegistry(), quiet())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := feed.Drive(ctx, c.Run); err != nil {
				t.Fatal(err)
			}
			msgs, exchanges := ev.Messages()
			if len(msgs) != tc.want {
				t.Fatalf("posted %d events, want %d", len(msgs), tc.want)
			}
			if tc.want == 0 {
				return
			}
			m := msgs[0]
			if exchanges[0] != top.EventsExchange() || m.MessageId != d.MessageId ||
				m.Headers[contracts.HeaderEvent] != string(contracts.EventDelivered) || m.Headers[contracts.HeaderClientID] != "app-1" {
				t.Errorf("event to %s: id %s headers %v", exchanges[0], m.MessageId, m.Headers)
			}
		})
	}
}

// Status notices become the documented envelope on the app's topic, from
// the roles allowed to send them; a result of a command that asked for
// notices is followed by done.
func TestStatusNotices(t *testing.T) {
	top := contracts.DefaultTopology()
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "d-1", MsgID: "7", AcceptedAt: time.Now(), Notices: true}
	notice := func(status string, user identity.Service) *amqp.Delivery {
		p := contracts.Notice(meta, status, time.Unix(1_800_000_000, 0))
		return &amqp.Delivery{MessageId: p.MessageId, Headers: p.Headers, UserId: string(user)}
	}
	for _, tc := range []struct {
		name string
		d    *amqp.Delivery
		want amqplink.Action
		body string
	}{
		{"queued from the cashier", notice(contracts.NoticeQueued, identity.Cashier), amqplink.Ack,
			`{"cafe":"status","status":"queued","id":7,"command_id":"` + meta.CommandID + `","at":"2027-01-15T08:00:00Z"}`},
		{"sent from a barista", notice(contracts.NoticeSent, identity.Barista), amqplink.Ack,
			`{"cafe":"status","status":"sent","id":7,"command_id":"` + meta.CommandID + `","at":"2027-01-15T08:00:00Z"}`},
		{"sent from the cashier", notice(contracts.NoticeSent, identity.Cashier), amqplink.Reject, ""},
		{"unknown status", notice("done", identity.Barista), amqplink.Reject, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mq := &fakeMQTT{}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			v := deliverOne(ctx, t, top.ResultsQueue(), tc.d, mq)
			if v.Action != tc.want {
				t.Fatalf("verdict %s (%s), want %s", v.Action, v.Reason, tc.want)
			}
			if tc.body != "" && (len(mq.sent) != 1 || string(mq.sent[0].Payload) != tc.body) {
				t.Fatalf("sent %+v, want %s", mq.sent, tc.body)
			}
		})
	}
	t.Run("result then done", func(t *testing.T) {
		d := resultDelivery("app-1", `{"jsonrpc":"2.0","id":1,"result":true}`)
		d.Headers[contracts.HeaderEvents] = contracts.EventsStatus
		mq := &fakeMQTT{}
		deliverOne(context.Background(), t, top.ResultsQueue(), d, mq)
		if len(mq.sent) != 2 || !strings.Contains(string(mq.sent[1].Payload), `"status":"done","id":1`) {
			t.Fatalf("sent %d messages: %+v; want the result then done", len(mq.sent), mq.sent)
		}
	})
}
