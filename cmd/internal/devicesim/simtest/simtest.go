// Package simtest is the pipeline's side of the device contract, for the
// tests of the simulated devices and of their binary: a barista that sends
// commands and reads the replies on a route of its own, a watcher of
// presence, and the clean-up of the retained presence that a test's
// devices leave on the broker. It is an independent implementation of the
// contract (its topics come from package contracts, nothing from
// devicesim), on the real broker (contracts/brokertest).
package simtest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// Wait is how long a helper waits for the broker or for a device.
const Wait = 5 * time.Second

// Link is an MQTT link to the test broker (or cfg.URL) with a clean
// session, reconnecting quickly, that runs until the test ends.
func Link(t testing.TB, cfg mqttlink.Config) *mqttlink.Link {
	t.Helper()
	cfg.CleanSession = true
	return brokertest.MQTT(t, cfg)
}

// Connected waits until l is connected.
var Connected = brokertest.Connected

// Publish publishes m on l and waits for the broker to have it.
func Publish(t testing.TB, l *mqttlink.Link, m mqttlink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := l.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// ClearPresence deletes the retained presence of ids, so that test runs
// leave nothing behind in the broker.
func ClearPresence(t testing.TB, ids ...string) {
	t.Helper()
	l := Link(t, mqttlink.Config{ClientID: brokertest.ID(t, "janitor")})
	for _, id := range ids {
		Publish(t, l, mqttlink.Message{Topic: contracts.PresenceTopic(id), QoS: 1, Retained: true})
	}
}

// Inbox records what a subscription receives, in order, per topic.
type Inbox struct {
	mu   sync.Mutex
	msgs map[string][]Received
}

// Received is one message an Inbox got, and when.
type Received struct {
	Payload []byte
	At      time.Time
}

// Handle is the subscription's handler.
func (b *Inbox) Handle(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.msgs == nil {
		b.msgs = map[string][]Received{}
	}
	b.msgs[topic] = append(b.msgs[topic], Received{Payload: append([]byte(nil), payload...), At: time.Now()})
}

// On returns what arrived on topic so far.
func (b *Inbox) On(topic string) []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.msgs[topic]...)
}

// WatchPresence subscribes to a device's presence on the broker at url
// and records every payload: the retained one first, then live changes.
func WatchPresence(t testing.TB, url, id string) *Inbox {
	t.Helper()
	var b Inbox
	l := Link(t, mqttlink.Config{URL: url, ClientID: brokertest.ID(t, "watch")})
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := l.Subscribe(ctx, contracts.PresenceTopic(id), 1, b.Handle); err != nil {
		t.Fatal(err)
	}
	Connected(t, l)
	return &b
}

// PresenceIs waits until the last presence b saw of id is online == want.
func PresenceIs(t testing.TB, b *Inbox, id string, want bool) {
	t.Helper()
	brokertest.Eventually(t, Wait, "presence never became the expected one", func() bool {
		got := b.On(contracts.PresenceTopic(id))
		if len(got) == 0 {
			return false
		}
		online, err := contracts.ParsePresence(got[len(got)-1].Payload)
		return err == nil && online == want
	})
}

// Barista plays the pipeline's side: its own route, commands on
// devices/{id}/commands/{route}/{key}, replies from
// devices/+/replies/{route}/+.
type Barista struct {
	t     testing.TB
	Route string
	Link  *mqttlink.Link
	Inbox
}

// NewBarista is a connected Barista with a route of the test's own.
func NewBarista(t testing.TB) *Barista {
	t.Helper()
	b := &Barista{t: t, Route: brokertest.ID(t, "r")}
	b.Link = Link(t, mqttlink.Config{ClientID: brokertest.ID(t, "barista")})
	b.Subscribe(contracts.RepliesFilter(b.Route))
	Connected(t, b.Link)
	return b
}

// Subscribe adds a filter (for replies on unusual topics).
func (b *Barista) Subscribe(filter string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := b.Link.Subscribe(ctx, filter, 1, b.Handle); err != nil {
		b.t.Fatal(err)
	}
}

// Send publishes a command on the barista's route and returns its key (a
// new one when key is "").
func (b *Barista) Send(device, key, payload string) string {
	b.t.Helper()
	if key == "" {
		key = contracts.NewCommandID()
	}
	Publish(b.t, b.Link, mqttlink.Message{Topic: contracts.CommandTopic(device, b.Route, key), Payload: []byte(payload), QoS: 1})
	return key
}

// Replies waits for n replies to key and returns them.
func (b *Barista) Replies(device, key string, n int) []Received {
	b.t.Helper()
	topic := contracts.ReplyTopic(device, b.Route, key)
	brokertest.Eventually(b.t, Wait, "no reply on "+topic, func() bool { return len(b.On(topic)) >= n })
	return b.On(topic)
}

// Call sends a command and returns its reply.
func (b *Barista) Call(device, payload string) string {
	b.t.Helper()
	return string(b.Replies(device, b.Send(device, "", payload), 1)[0].Payload)
}

// Silent says that key got no reply: the sentinel's reply arrived, and
// commands are answered in parallel, so this only holds for commands that
// never answer (which is what it checks).
func (b *Barista) Silent(device, key string) {
	b.t.Helper()
	if got := b.Call(device, `{"jsonrpc":"2.0","id":"sentinel","method":"echo"}`); !strings.HasPrefix(got, `{"jsonrpc":"2.0","id":"sentinel",`) {
		b.t.Fatalf("sentinel reply %s", got)
	}
	if got := b.On(contracts.ReplyTopic(device, b.Route, key)); len(got) != 0 {
		b.t.Fatalf("got %d replies, want none: %s", len(got), got[0].Payload)
	}
}
