package brokertest

import (
	"context"
	"log/slog"
	"sync"
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
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = link.Run(ctx) })
	wg.Go(func() { _ = pub.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := pub.WaitReady(wctx); err != nil {
		t.Fatalf("publisher to %s not ready: %v", AMQPURL(), err)
	}
	return pub
}
