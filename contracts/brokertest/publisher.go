package brokertest

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
)

// Publisher runs a confirmed publisher on the test RabbitMQ, logged in as
// service as, on topology top (declared already: see Topology), until the
// test ends. It returns once the publisher is ready. Tests use it to play
// the part of a cashier or a barista (whose messages the roles behind them
// trust), or of an intruder (any other service).
func Publisher(t testing.TB, top contracts.Topology, as identity.Service) *amqplink.Publisher {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	link, err := amqplink.New(amqplink.Config{URL: AMQPURLAs(as), Topology: top, Name: "test-" + t.Name(), Passive: as != identity.Admin}, log)
	if err != nil {
		t.Fatal(err)
	}
	pub := amqplink.NewPublisher(link, log)
	Start(t, nil, link.Run, pub.Run)
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := pub.WaitReady(wctx); err != nil {
		t.Fatalf("publisher to %s as %s not ready: %v", AMQPBase(), as, err)
	}
	return pub
}
