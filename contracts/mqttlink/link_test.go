package mqttlink_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// TestMain checks that nothing leaks, except one goroutine of paho's own:
// a Disconnect while paho is between two connect attempts (a broker that
// refuses the client certificate after the TLS 1.3 handshake, in
// TestTLSClientCertificateRequiredByBroker) returns after the quiesce
// time and leaves paho's disconnect goroutine waiting for that attempt to
// end, which it does on paho's next retry.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).Disconnect.func1"))
}

// inbox collects what a handler receives.
type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *inbox) handle(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, topic+" "+string(payload))
}

func (b *inbox) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m == s {
			return true
		}
	}
	return false
}

func (b *inbox) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.msgs)
}

var (
	start     = brokertest.MQTT
	connected = brokertest.Connected
)

func send(t *testing.T, l *mqttlink.Link, topic, payload string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Publish(ctx, mqttlink.Message{Topic: topic, Payload: []byte(payload), QoS: 1}); err != nil {
		t.Fatal(err)
	}
}

func subscribe(t *testing.T, l *mqttlink.Link, filter string, b *inbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Subscribe(ctx, filter, 1, b.handle); err != nil {
		t.Fatal(err)
	}
}

func viaProxy(t *testing.T) (*brokertest.Proxy, string) {
	return brokertest.ViaProxy(t, brokertest.MQTTURL())
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	topic := "test/" + brokertest.ID(t, "topic")
	var got inbox
	sub := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "sub"), CleanSession: true})
	subscribe(t, sub, topic, &got) // before connecting: made on connect
	connected(t, sub)
	pub := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true})
	send(t, pub, topic, "hello")
	brokertest.Eventually(t, 5*time.Second, "message not received", func() bool { return got.has(topic + " hello") })
}

func TestStartsWithBrokerDownAndConnectsLater(t *testing.T) {
	proxy, u := viaProxy(t)
	proxy.Cut()
	topic := "test/" + brokertest.ID(t, "topic")
	var got inbox
	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: true})
	subscribe(t, l, topic, &got)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Publish(ctx, mqttlink.Message{Topic: topic, Payload: []byte("x"), QoS: 1}); !errors.Is(err, mqttlink.ErrNotConnected) {
		t.Fatalf("publish with the broker down: got %v, want ErrNotConnected", err)
	}
	if l.Connected() {
		t.Fatal("connected with the broker down")
	}
	proxy.Restore()
	connected(t, l)
	send(t, start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true}), topic, "late")
	brokertest.Eventually(t, 5*time.Second, "subscription made before the broker came up does not work", func() bool { return got.has(topic + " late") })
}

func TestReconnectRenewsSubscriptions(t *testing.T) {
	proxy, u := viaProxy(t)
	topic := "test/" + brokertest.ID(t, "topic")
	var got inbox
	// A clean session loses its subscriptions with the connection, so only
	// the renewal on reconnect can bring messages back.
	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: true})
	subscribe(t, l, topic, &got)
	connected(t, l)

	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link did not notice the cut", func() bool { return !l.Connected() })
	proxy.Restore()
	connected(t, l)
	send(t, start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true}), topic, "after")
	brokertest.Eventually(t, 5*time.Second, "subscription not renewed after reconnect", func() bool { return got.has(topic + " after") })
}

func TestPersistentSessionKeepsMessagesWhileAway(t *testing.T) {
	proxy, u := viaProxy(t)
	topic := "test/" + brokertest.ID(t, "topic")
	var got inbox
	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: false})
	subscribe(t, l, topic, &got)
	connected(t, l)

	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link did not notice the cut", func() bool { return !l.Connected() })
	pub := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true})
	send(t, pub, topic, "while-away")
	proxy.Restore()
	brokertest.Eventually(t, 10*time.Second, "message sent while away was not delivered after reconnect", func() bool { return got.has(topic + " while-away") })
}

func TestWillIsPublishedWhenClientVanishes(t *testing.T) {
	proxy, u := viaProxy(t)
	topic := "test/" + brokertest.ID(t, "will")
	var got inbox
	watcher := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "w"), CleanSession: true})
	subscribe(t, watcher, topic, &got)
	connected(t, watcher)

	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: true,
		Will: &mqttlink.Message{Topic: topic, Payload: []byte(`{"online":false}`), QoS: 1}})
	connected(t, l)
	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "will not published", func() bool { return got.has(topic + ` {"online":false}`) })
}

func TestOnConnectRunsOnEveryConnection(t *testing.T) {
	proxy, u := viaProxy(t)
	var mu sync.Mutex
	n := 0
	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: true,
		OnConnect: func(*mqttlink.Link) { mu.Lock(); n++; mu.Unlock() }})
	connected(t, l)
	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link did not notice the cut", func() bool { return !l.Connected() })
	proxy.Restore()
	connected(t, l)
	brokertest.Eventually(t, 5*time.Second, "OnConnect did not run twice", func() bool { mu.Lock(); defer mu.Unlock(); return n == 2 })
}

func TestRunEndForgetsPersistentSession(t *testing.T) {
	topic := "test/" + brokertest.ID(t, "topic")
	id := brokertest.ID(t, "c")
	var first inbox
	l, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: id, CleanSession: false, ForgetSession: true}, brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	stop := l.Background()
	subscribe(t, l, topic, &first)
	connected(t, l)
	stop()

	pub := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true})
	send(t, pub, topic, "after-close")

	// Same client id, persistent session, no subscription of its own: if the
	// old session survived, the message queued for it would arrive here.
	var second inbox
	again := start(t, mqttlink.Config{ClientID: id, CleanSession: false})
	subscribe(t, again, "test/never-used/"+id, &second)
	connected(t, again)
	sentinel := "test/" + brokertest.ID(t, "sentinel")
	subscribe(t, again, sentinel, &second)
	send(t, pub, sentinel, "done")
	brokertest.Eventually(t, 5*time.Second, "sentinel not received", func() bool { return second.has(sentinel + " done") })
	if second.len() != 1 {
		t.Fatalf("the forgotten session still delivered: %v", second.msgs)
	}
}

func TestConfigIsValidated(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mqttlink.Config
	}{
		{"no client id", mqttlink.Config{URL: "tcp://127.0.0.1:1883"}},
		{"no host", mqttlink.Config{URL: "tcp://", ClientID: "c"}},
		{"http scheme", mqttlink.Config{URL: "http://127.0.0.1:1883", ClientID: "c"}},
		{"garbage", mqttlink.Config{URL: "::", ClientID: "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mqttlink.New(tc.cfg, brokertest.Quiet()); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	_, err := mqttlink.New(mqttlink.Config{URL: "http://u:secret@h:1/", ClientID: "c"}, brokertest.Quiet())
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("got %v; want an error that hides the password", err)
	}
}

func TestWaitReadyHandlesRetainedMessagesFirst(t *testing.T) {
	prefix := "test/" + brokertest.ID(t, "retained")
	pub := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "pub"), CleanSession: true})
	connected(t, pub)
	const n = 200
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		topic := prefix + "/" + strconv.Itoa(i)
		if err := pub.Publish(ctx, mqttlink.Message{Topic: topic, Payload: []byte("r"), QoS: 1, Retained: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = pub.Publish(ctx, mqttlink.Message{Topic: topic, QoS: 1, Retained: true})
		})
	}
	var got inbox
	l := start(t, mqttlink.Config{ClientID: brokertest.ID(t, "c"), CleanSession: true})
	subscribe(t, l, prefix+"/+", &got)
	if err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if got.len() != n {
		t.Fatalf("ready after %d of %d retained messages", got.len(), n)
	}
}

func TestLostIsClosedWhileNotConnected(t *testing.T) {
	proxy, u := viaProxy(t)
	l := start(t, mqttlink.Config{URL: u, ClientID: brokertest.ID(t, "c"), CleanSession: true})
	connected(t, l)
	lost := l.Lost()
	select {
	case <-lost:
		t.Fatal("Lost is closed while connected")
	default:
	}
	proxy.Cut()
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("Lost not closed after the connection was cut")
	}
	proxy.Restore()
	connected(t, l)
	select {
	case <-l.Lost():
		t.Fatal("the new connection's Lost is closed")
	default:
	}
}
