package amqplink_test

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// The events queue gets, from RabbitMQ itself, a copy of every command,
// result and dead letter, and the explicit events posted to the events
// exchange, each marked by the exchange it came through.
func TestEventsQueueGetsACopyOfEverything(t *testing.T) {
	top := brokertest.Topology(t)
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	cmd := msg(`{"jsonrpc":"2.0","method":"m","id":1}`)
	if err := publish(t, pub, top, cmd); err != nil {
		t.Fatal(err)
	}
	brokertest.Publish(t, pub, top.ResultsExchange(), contracts.RoutingKeyResult, msg(`{"jsonrpc":"2.0","result":1,"id":1}`))
	brokertest.Publish(t, pub, top.DeadExchange(), "", msg(`{}`))
	ev := contracts.Event(contracts.EventSent, cmd.MessageId, "app-1", "d-1", "1", time.Now())
	if err := pub.Post(top.EventsExchange(), "", ev); err != nil {
		t.Fatal(err)
	}
	want := []string{top.CommandsExchange(), top.ResultsExchange(), top.DeadExchange(), top.EventsExchange()}
	got := drain(t, top.EventsQueue(), len(want))
	for i, d := range got {
		if d.Exchange != want[i] {
			t.Errorf("event %d came through %q, want %q", i, d.Exchange, want[i])
		}
	}
	if got[3].Headers[contracts.HeaderEvent] != string(contracts.EventSent) || got[3].MessageId != cmd.MessageId {
		t.Errorf("posted event: headers %v id %q", got[3].Headers, got[3].MessageId)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 1 {
		t.Errorf("the commands queue holds %d, want 1: the copy must not take the command", n)
	}
}

// At its limit the events queue drops its oldest events and never refuses
// a publish: a ledger that is away must not make the cashier answer 503.
func TestFullEventsQueueDropsOldestAndRefusesNothing(t *testing.T) {
	const limit = 3
	top := brokertest.TopologyWith(t, func(top *contracts.Topology) { top.EventsMaxLength = limit })
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	var ids []string
	for i := range 6 {
		m := msg("{}")
		ids = append(ids, m.MessageId)
		if err := publish(t, pub, top, m); err != nil {
			t.Fatalf("command %d refused with the events queue full: %v", i, err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "events queue trimmed to its limit", func() bool {
		return brokertest.QueueDepth(t, top.EventsQueue()) == limit
	})
	got := drain(t, top.EventsQueue(), limit)
	for i, d := range got {
		if want := ids[len(ids)-limit+i]; d.MessageId != want {
			t.Errorf("event %d is %s, want the newest ones kept (%s)", i, d.MessageId, want)
		}
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 6 {
		t.Errorf("commands queue holds %d, want all 6", n)
	}
}

// drain takes n messages from queue, in order, failing if they do not come.
func drain(t *testing.T, queue string, n int) []amqp.Delivery {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	brokertest.Eventually(t, 5*time.Second, "events arrive", func() bool {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, d)
		}
		return len(out) == n
	})
	return out
}
