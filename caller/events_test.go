package caller_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/brokertest"
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
