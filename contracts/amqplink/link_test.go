package amqplink_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = brokertest.Quiet

// startLink runs a link (and a publisher on it) until the test ends.
func startLink(t *testing.T, rawURL string, top contracts.Topology) (*amqplink.Link, *amqplink.Publisher) {
	t.Helper()
	link, err := amqplink.New(amqplink.Config{URL: rawURL, Topology: top, Name: t.Name(), MaxBackoff: 200 * time.Millisecond}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	pub := amqplink.NewPublisher(link, quiet())
	brokertest.Start(t, nil, link.Run, pub.Run)
	return link, pub
}

func viaProxy(t *testing.T) (*brokertest.Proxy, string) {
	return brokertest.ViaProxy(t, amqplink.FirstURL(brokertest.AMQPURL()))
}

func msg(body string) amqp.Publishing {
	return amqp.Publishing{MessageId: contracts.NewCommandID(), Body: []byte(body), ContentType: contracts.ContentTypeJSON}
}

func publish(t *testing.T, pub *amqplink.Publisher, top contracts.Topology, m amqp.Publishing) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pub.Publish(ctx, top.CommandsExchange(), contracts.RoutingKeyCommand, m)
}

func waitReady(t *testing.T, pub *amqplink.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitReady(ctx); err != nil {
		t.Fatalf("publisher not ready: %v", err)
	}
}

func TestPublishConfirmedReachesQueueUnchanged(t *testing.T) {
	top := brokertest.Topology(t)
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)

	m := msg(`{"jsonrpc":"2.0","method":"m","id":1}`)
	m.Headers = amqp.Table{contracts.HeaderClientID: "app-1"}
	if err := publish(t, pub, top, m); err != nil {
		t.Fatalf("publish: %v", err)
	}
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	d, ok, err := ch.Get(top.CommandsQueue(), true)
	if err != nil || !ok {
		t.Fatalf("queue is empty after a confirmed publish (err %v)", err)
	}
	if string(d.Body) != string(m.Body) || d.MessageId != m.MessageId || d.Headers[contracts.HeaderClientID] != "app-1" {
		t.Fatalf("got body %q id %q headers %v", d.Body, d.MessageId, d.Headers)
	}
	if d.DeliveryMode != amqp.Persistent {
		t.Errorf("delivery mode %d, want persistent", d.DeliveryMode)
	}
}

func TestPublishToFullQueueIsNacked(t *testing.T) {
	top := brokertest.TopologyWith(t, func(top *contracts.Topology) { top.CommandsMaxLength = 2 })
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)

	for i := range 2 {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatalf("publish %d into a queue with room: %v", i, err)
		}
	}
	// A quorum queue checks its length after appending, so RabbitMQ 3.10
	// takes one message beyond x-max-length before it starts refusing.
	confirmed, err := 2, error(nil)
	for range 3 {
		if err = publish(t, pub, top, msg("{}")); err != nil {
			break
		}
		confirmed++
	}
	if !errors.Is(err, amqplink.ErrNacked) || !errors.Is(err, amqplink.ErrNotConfirmed) {
		t.Fatalf("publish into a full queue: got %v, want ErrNacked", err)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != confirmed || n > top.CommandsMaxLength+1 {
		t.Fatalf("queue holds %d messages; %d were confirmed with a limit of %d", n, confirmed, top.CommandsMaxLength)
	}
}

func TestUnroutablePublishIsReturnedNotConfirmed(t *testing.T) {
	top := brokertest.Topology(t)
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := pub.Publish(ctx, top.CommandsExchange(), "no-such-key", msg("{}"))
	if !errors.Is(err, amqplink.ErrReturned) {
		t.Fatalf("got %v, want ErrReturned", err)
	}
	// The channel is still usable afterwards.
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatalf("publish after a return: %v", err)
	}
}

func TestLinkStartsWithBrokerDownAndRecovers(t *testing.T) {
	proxy, u := viaProxy(t)
	proxy.Cut()
	top := brokertest.Topology(t)
	link, pub := startLink(t, u, top)

	if err := publish(t, pub, top, msg("{}")); !errors.Is(err, amqplink.ErrNotConnected) {
		t.Fatalf("publish with the broker down: got %v, want ErrNotConnected", err)
	}
	if link.Ready() {
		t.Fatal("link ready with the broker down")
	}
	brokertest.Eventually(t, 5*time.Second, "link never reported why it is down", func() bool { return link.LastError() != nil })

	proxy.Restore()
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatalf("publish after the broker came up: %v", err)
	}
}

func TestLinkReconnectsAfterConnectionLoss(t *testing.T) {
	proxy, u := viaProxy(t)
	top := brokertest.Topology(t)
	link, pub := startLink(t, u, top)
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatal(err)
	}

	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "link still ready after its connection was cut", func() bool { return !link.Ready() })
	if err := publish(t, pub, top, msg("{}")); !errors.Is(err, amqplink.ErrNotConfirmed) {
		t.Fatalf("publish while cut off: got %v, want a not-confirmed error", err)
	}

	proxy.Restore()
	waitReady(t, pub)
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatalf("publish after reconnect: %v", err)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 2 {
		t.Fatalf("queue holds %d messages, want the 2 confirmed ones", n)
	}
}

// Two URLs of one broker, each behind its own proxy: whichever the link
// is on is cut, and it goes on through the other, each time.
func TestLinkFailsOverToAnotherURLOfTheList(t *testing.T) {
	a, ua := viaProxy(t)
	b, ub := viaProxy(t)
	top := brokertest.Topology(t)
	a.Cut() // the first URL is down from the start: the link must try the second
	link, pub := startLink(t, ua+","+ub, top)
	waitReady(t, pub)
	confirmed := 0
	for i, cut := range []struct{ down, up *brokertest.Proxy }{{b, a}, {a, b}, {b, a}} {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatalf("round %d: publish: %v", i, err)
		}
		confirmed++
		before := conn(t, link)
		cut.up.Restore()
		cut.down.Cut()
		// Fast enough that Ready may never be seen false: wait for a new connection.
		brokertest.Eventually(t, 10*time.Second, "link did not move to the other URL", func() bool { return conn(t, link) != before })
		waitReady(t, pub)
	}
	if err := publish(t, pub, top, msg("{}")); err != nil {
		t.Fatalf("publish after the last failover: %v", err)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != confirmed+1 {
		t.Fatalf("queue holds %d messages, want the %d confirmed ones", n, confirmed+1)
	}
}

// conn is the link's current connection.
func conn(t *testing.T, link *amqplink.Link) *amqp.Connection {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := link.Conn(ctx)
	if err != nil {
		t.Fatalf("no connection: %v", err)
	}
	return c
}

func TestLinkWithEveryURLDownSaysWhyForEach(t *testing.T) {
	a, ua := viaProxy(t)
	b, ub := viaProxy(t)
	a.Cut()
	b.Cut()
	link, _ := startLink(t, ua+","+ub, brokertest.Topology(t))
	brokertest.Eventually(t, 5*time.Second, "link never reported why it is down", func() bool { return link.LastError() != nil })
	why := link.LastError().Error()
	for _, p := range []*brokertest.Proxy{a, b} {
		if !strings.Contains(why, p.Addr()) {
			t.Errorf("error %q does not name %s", why, p.Addr())
		}
	}
}

func TestUnconfirmedPublishFailsWhenConnectionDrops(t *testing.T) {
	proxy, u := viaProxy(t)
	top := brokertest.Topology(t)
	_, pub := startLink(t, u, top)
	waitReady(t, pub)

	// Many publishes in flight while the connection is cut: none may report
	// success unless the broker really holds it.
	var confirmed atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if publish(t, pub, top, msg("{}")) == nil {
				confirmed.Add(1)
			}
		})
	}
	proxy.Cut()
	wg.Wait()
	proxy.Restore()
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); int64(n) < confirmed.Load() {
		t.Fatalf("%d publishes reported confirmed but the queue holds only %d", confirmed.Load(), n)
	}
}

func TestDeclareExplainsArgumentMismatch(t *testing.T) {
	top := brokertest.Topology(t)
	_, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)

	other := top
	other.DeliveryLimit = top.DeliveryLimit + 1
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	err := amqplink.Declare(ch, other)
	if err == nil || !strings.Contains(err.Error(), "other arguments") || !strings.Contains(err.Error(), "CAFE_AMQP_PREFIX") {
		t.Fatalf("got %v, want an error that says the queue exists with other arguments and what to do", err)
	}
}

func TestCheckServer(t *testing.T) {
	caps := amqp.Table{"publisher_confirms": true, "basic.nack": true, "connection.blocked": true, "consumer_cancel_notify": true}
	for _, tc := range []struct {
		name  string
		props amqp.Table
		ok    bool
	}{
		{"3.10", amqp.Table{"product": "RabbitMQ", "version": "3.10.8", "capabilities": caps}, true},
		{"4.0", amqp.Table{"product": "RabbitMQ", "version": "4.0.1", "capabilities": caps}, true},
		{"3.9", amqp.Table{"product": "RabbitMQ", "version": "3.9.29", "capabilities": caps}, false},
		{"garbage version", amqp.Table{"product": "RabbitMQ", "version": "x", "capabilities": caps}, false},
		{"no confirms", amqp.Table{"product": "RabbitMQ", "version": "3.12.0", "capabilities": amqp.Table{"basic.nack": true}}, false},
		{"other broker", amqp.Table{"product": "qpid", "version": "9.0", "capabilities": caps}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := amqplink.CheckServer(tc.props)
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, amqplink.ErrServerUnsupported) {
				t.Fatalf("error %v does not wrap ErrServerUnsupported", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, raw := range []string{"", "http://x", "amqp://", "::", "amqp://a/,http://b/", "amqp://a/,,amqp://b/"} {
		err := amqplink.Config{URL: raw, Topology: contracts.DefaultTopology()}.Validate()
		if !slices.Contains(contracts.InvalidSettings(err), amqplink.SettingURL) {
			t.Errorf("url %q: got %v, want an error naming %s", raw, err, amqplink.SettingURL)
		}
	}
	if _, err := amqplink.New(amqplink.Config{Topology: contracts.DefaultTopology()}, quiet()); err != nil {
		t.Errorf("no url: %v, want the default %s", err, amqplink.DefaultURL)
	}
	_, err := amqplink.New(amqplink.Config{URL: "amqp://u:secret@h:5672/", Topology: contracts.Topology{}}, quiet())
	if err == nil {
		t.Fatal("empty topology accepted")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestQueueCollectorReportsDepth(t *testing.T) {
	top := brokertest.Topology(t)
	link, pub := startLink(t, brokertest.AMQPURL(), top)
	waitReady(t, pub)
	for range 3 {
		if err := publish(t, pub, top, msg("{}")); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(link.QueueCollector())
	n, err := testutil.GatherAndCount(reg, "cafe_queue_messages")
	if err != nil || n != 3 {
		t.Fatalf("%d cafe_queue_messages series (err %v), want one per queue", n, err)
	}
	want := strings.NewReader("# HELP cafe_queue_messages Messages ready in a cafe queue (commands, results, dead).\n# TYPE cafe_queue_messages gauge\n" +
		"cafe_queue_messages{queue=\"commands\"} 3\ncafe_queue_messages{queue=\"dead\"} 0\ncafe_queue_messages{queue=\"results\"} 0\n")
	if err := testutil.GatherAndCompare(reg, want, "cafe_queue_messages"); err != nil {
		t.Fatal(err)
	}
}
