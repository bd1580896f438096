package brokertest

import (
	"cmp"
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// Quiet is a logger that discards everything, for links under test.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// ViaProxy returns a proxy in front of the broker of rawURL and the URL
// that reaches the broker through it.
func ViaProxy(t testing.TB, rawURL string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.Addr()
	return p, u.String()
}

// MQTT runs an MQTT link with cfg until the test ends: on the test broker
// unless cfg says otherwise, reconnecting quickly, and forgetting its
// session at the end (a test's client ids never come back).
func MQTT(t testing.TB, cfg mqttlink.Config) *mqttlink.Link {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = MQTTURL()
	}
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, 200*time.Millisecond)
	cfg.ForgetSession = !cfg.CleanSession
	l, err := mqttlink.New(cfg, Quiet())
	if err != nil {
		t.Fatal(err)
	}
	Run(t, l)
	return l
}

// Connected waits until l is connected, or fails the test.
func Connected(t testing.TB, l *mqttlink.Link) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitConnected(ctx); err != nil {
		t.Fatalf("mqtt link %s: %v", MQTTURL(), err)
	}
}

// Publish publishes m to exchange with key on pub and fails the test if it
// is not confirmed within 5 seconds. A message without an id gets one.
func Publish(t testing.TB, pub *amqplink.Publisher, exchange, key string, m amqp.Publishing) {
	t.Helper()
	if m.MessageId == "" {
		m.MessageId = contracts.NewCommandID()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, exchange, key, m); err != nil {
		t.Fatalf("publish to %s: %v", exchange, err)
	}
}
