package amqplink_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
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

// A publisher whose user may not write to the events exchange (a broker
// set up before the events existed) is refused once and then pauses
// instead of opening a channel per refused message; Post says it could
// not send, and nothing else of the link is disturbed.
func TestRefusedPostPausesThePublisher(t *testing.T) {
	top := brokertest.Topology(t)
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Cashier), Topology: top, Name: t.Name(), Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	var logs brokertest.Logs
	pub := amqplink.NewPublisher(link, logs.Logger())
	brokertest.Start(t, nil, link.Run, pub.Run)
	waitReady(t, pub)
	ev := contracts.Event(contracts.EventSent, contracts.NewCommandID(), "app-1", "d-1", "1", time.Now())
	if err := pub.Post(top.EventsExchange(), "", ev); err != nil {
		t.Fatalf("first post: %v (it is refused asynchronously)", err)
	}
	// The publisher logs the refusal (with its user) as it begins to
	// pause, after it gave the channel up: from then on it is not ready
	// until the pause ends, not at once.
	brokertest.Eventually(t, 5*time.Second, "the refused publisher never said it pauses", func() bool {
		return len(logs.With("user", string(identity.Cashier))) > 0
	})
	if pub.Ready() {
		t.Fatal("the publisher reopened at once after a refusal")
	}
	if recs := logs.With("user", string(identity.Cashier)); len(recs) != 1 || recs[0]["level"] != "WARN" || !strings.Contains(fmt.Sprint(recs[0]["msg"]), "publishing again in") {
		t.Fatalf("logged %v, want one warning that it pauses", recs)
	}
	if err := pub.Post(top.EventsExchange(), "", ev); !errors.Is(err, amqplink.ErrNotConnected) {
		t.Fatalf("post while paused: %v, want ErrNotConnected", err)
	}
	if !link.Ready() {
		t.Fatal("the link went down with the refused channel")
	}
	if n := brokertest.QueueDepth(t, top.EventsQueue()); n != 0 {
		t.Fatalf("the events queue holds %d refused events", n)
	}
}
