package barista_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// A command the MQTT broker took is followed by one "sent" event; one that
// never reached the device (expired) by none.
func TestSentEvent(t *testing.T) {
	echo := `{"jsonrpc":"2.0","method":"echo","id":7}`
	reply := []byte(`{"jsonrpc":"2.0","id":7,"result":true}`)
	for _, tc := range []struct {
		name string
		d    *amqp.Delivery
		want int
	}{
		{"sent", delivery(echo, time.Minute, nil), 1},
		{"expired", delivery(echo, -time.Second, nil), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &brokertest.Posted{}
			handleAlone(t, tc.d, reply, barista.Links{Events: ev})
			msgs, _ := ev.Messages()
			if len(msgs) != tc.want {
				t.Fatalf("posted %d events, want %d", len(msgs), tc.want)
			}
			if tc.want == 1 && (msgs[0].MessageId != tc.d.MessageId || msgs[0].Headers[contracts.HeaderEvent] != string(contracts.EventSent)) {
				t.Errorf("event id %s headers %v", msgs[0].MessageId, msgs[0].Headers)
			}
		})
	}
}

// Without an events poster (no ledger) a command whose app asked for
// status notices still gets its "sent" notice, and one that did not gets
// nothing posted.
func TestSentNoticeWithoutEvents(t *testing.T) {
	echo := `{"jsonrpc":"2.0","method":"echo","id":7}`
	reply := []byte(`{"jsonrpc":"2.0","id":7,"result":true}`)
	for _, tc := range []struct {
		name    string
		notices bool
		want    int
	}{{"notices asked for", true, 1}, {"no notices", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			d := delivery(echo, time.Minute, func(d *amqp.Delivery) {
				if tc.notices {
					d.Headers[contracts.HeaderEvents] = contracts.EventsStatus
				}
			})
			notices := &brokertest.Posted{}
			handleAlone(t, d, reply, barista.Links{Notices: notices})
			msgs, _ := notices.Messages()
			if len(msgs) != tc.want {
				t.Fatalf("posted %d notices, want %d", len(msgs), tc.want)
			}
			if tc.want == 1 && msgs[0].Headers[contracts.HeaderEvent] != nil {
				t.Errorf("a notice with event headers %v: an event went to the notices", msgs[0].Headers)
			}
		})
	}
}

// handleAlone runs a barista on the one delivery d, with links' posters,
// stand-in brokers for the rest and a device that answers reply.
func handleAlone(t *testing.T, d *amqp.Delivery, reply []byte, links barista.Links) {
	t.Helper()
	top := contracts.DefaultTopology()
	feed := brokertest.NewFeed(top.CommandsQueue(), 1, func(int) *amqp.Delivery { return d })
	links.Commands, links.Results, links.Devices = feed, &brokertest.Confirming{}, &scriptedMQTT{reply: reply}
	b, err := barista.New(barista.Config{Route: "b-events"}, top, links, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := feed.Drive(ctx, b.Run); err != nil {
		t.Fatal(err)
	}
}
