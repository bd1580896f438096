package brokertest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Publisher runs a confirmed publisher on the test RabbitMQ with topology
// top (declaring it), until the test ends. It returns once the publisher is
// ready. Tests use it to play the part of a cashier or a barista.
func Publisher(t testing.TB, top contracts.Topology) *amqplink.Publisher {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	link, err := amqplink.New(amqplink.Config{URL: AMQPURL(), Topology: top, Name: "test-" + t.Name()}, log)
	if err != nil {
		t.Fatal(err)
	}
	pub := amqplink.NewPublisher(link, log)
	Start(t, nil, link.Run, pub.Run)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := pub.WaitReady(wctx); err != nil {
		t.Fatalf("publisher to %s not ready: %v", AMQPURL(), err)
	}
	return pub
}
