package cashier_test

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// The cashier's side of a refused command: the commands queue is full, so
// RabbitMQ nacks the command and the cashier answers 503, but the events
// queue (drop-head) takes its copy all the same, which the ledger would
// record as queued, its id pending (409) for ever. So the cashier posts a
// refusal for it (commands exchange, key refused, to the events queue
// only), in its own name; an accepted command gets none. (The ledger's
// side, and the app's retry, are tested in caller/ledger, records and the
// e2e suite: a role's tests do not import another role.)
func TestLiveRefusedCommandIsReportedToTheLedger(t *testing.T) {
	top := brokertest.TopologyWith(t, func(top *contracts.Topology) { top.CommandsMaxLength = 1 })
	l := startLiveWith(t, brokertest.AMQPURLAs(identity.Cashier), top, func(s *cashier.Server, posts *amqplink.Publisher) {
		s.UseRefusals(posts)
	})
	l.waitReady(t)
	// A quorum queue applies its limit a little late: send until one is
	// refused (nothing consumes, so it stays full).
	id, accepted := "", 0
	for i := range 10 {
		id = fmt.Sprintf(`"ghost-%d"`, i)
		status, _, out := l.post(t, "lamp-1", `{"jsonrpc":"2.0","method":"on","id":`+id+`}`)
		if status == 503 {
			break
		}
		if status != 202 {
			t.Fatalf("%s: %d %s", id, status, out)
		}
		accepted++
	}
	if accepted == 10 {
		t.Fatal("10 commands accepted into a queue of max length 1")
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != accepted {
		t.Fatalf("commands queue holds %d, want the %d accepted commands only", n, accepted)
	}

	// The events queue: a copy of every command, the refused one's too,
	// and one refusal, the refused command's.
	copies := map[string]string{} // msg id → command id
	var refusals []amqp.Delivery
	ch := brokertest.Channel(t)
	brokertest.Eventually(t, 10*time.Second, "the refusal in the events queue", func() bool {
		for {
			d, ok, err := ch.Get(top.EventsQueue(), true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return len(refusals) > 0
			}
			switch d.RoutingKey {
			case contracts.RoutingKeyCommand:
				copies[contracts.ReadMeta(d.Headers).MsgID] = d.MessageId
			case contracts.RoutingKeyRefused:
				refusals = append(refusals, d)
			}
		}
	})
	if len(copies) != accepted+1 || copies[id] == "" {
		t.Errorf("copies in the events queue %v, want the %d accepted commands' and %s's", copies, accepted, id)
	}
	r := refusals[0]
	if len(refusals) != 1 || r.Exchange != top.CommandsExchange() || r.UserId != string(identity.Cashier) || r.MessageId != copies[id] ||
		r.Headers[contracts.HeaderEvent] != string(contracts.EventRefused) || contracts.ReadMeta(r.Headers).MsgID != id {
		t.Errorf("refusals %d, the first from %s via %s, command %s, headers %v; want one, from %s, for %s (command %s)",
			len(refusals), r.UserId, r.Exchange, r.MessageId, r.Headers, identity.Cashier, id, copies[id])
	}
}
