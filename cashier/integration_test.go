package cashier_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// live is a cashier on the real RabbitMQ, served over real HTTP.
type live struct {
	top    contracts.Topology
	base   string
	cancel context.CancelFunc // stops the HTTP server (graceful)
	done   chan error
}

func startLive(t *testing.T, amqpURL string, top contracts.Topology, mutate ...func(*cashier.Config)) *live {
	t.Helper()
	return startLiveWith(t, amqpURL, top, nil, mutate...)
}

// startLiveWith is startLive that gives the server, before it runs, to
// with, with a fire-and-forget publisher of its own (for notices and
// refusals, as the cashier role has).
func startLiveWith(t *testing.T, amqpURL string, top contracts.Topology, with func(s *cashier.Server, posts *amqplink.Publisher), mutate ...func(*cashier.Config)) *live {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	link, err := amqplink.New(amqplink.Config{URL: amqpURL, Topology: top, Name: "cashier-test", MaxBackoff: 200 * time.Millisecond, Passive: true}, log) // declared by the test, as by cafe-admin
	if err != nil {
		t.Fatal(err)
	}
	pub := amqplink.NewPublisher(link, log)
	posts := amqplink.NewPublisher(link, log)
	linkCtx, stopLink := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = link.Run(linkCtx) })
	wg.Go(func() { _ = pub.Run(linkCtx) })
	wg.Go(func() { _ = posts.Run(linkCtx) })

	reg, err := registry.Parse([]byte(fmt.Sprintf(registryDoc+registeredDevices, hash(tokenApp1), hash(tokenSlow))))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := cashier.New(cfg, reg, pub, top, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	if with != nil {
		with(s, posts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &live{top: top, base: "http://" + s.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { l.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-l.done
		stopLink()
		wg.Wait()
	})
	return l
}

func (l *live) post(t *testing.T, device, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, l.base+"/v1/devices/"+device+"/commands", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokenApp1)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(out)
}

func (l *live) get(t *testing.T, path string) int {
	t.Helper()
	res, err := http.Get(l.base + path)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func (l *live) waitReady(t *testing.T) {
	t.Helper()
	brokertest.Eventually(t, 10*time.Second, "cashier never became ready", func() bool { return l.get(t, "/readyz") == 200 })
}

func TestLiveAcceptedCommandIsInTheQueueUnchanged(t *testing.T) {
	top := brokertest.Topology(t)
	l := startLive(t, brokertest.AMQPURL(), top)
	l.waitReady(t)
	body := `{"jsonrpc":"2.0", "method":"on","id":1}`
	if status, _, out := l.post(t, "lamp-1", body); status != 202 {
		t.Fatalf("status %d: %s", status, out)
	}
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	d, ok, err := ch.Get(top.CommandsQueue(), true)
	if err != nil || !ok {
		t.Fatalf("nothing in the commands queue after a 202 (err %v)", err)
	}
	if string(d.Body) != body || contracts.ReadMeta(d.Headers).DeviceID != "lamp-1" {
		t.Fatalf("queued %q with headers %v", d.Body, d.Headers)
	}
}

func TestLiveBrokerDownGives503ThenRecovers(t *testing.T) {
	u, _ := url.Parse(brokertest.AMQPURL())
	proxy := brokertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	top := brokertest.Topology(t)
	proxy.Cut()
	l := startLive(t, u.String(), top)

	if code := l.get(t, "/readyz"); code != 503 {
		t.Fatalf("readyz with the broker down: %d", code)
	}
	if code := l.get(t, "/healthz"); code != 200 {
		t.Fatalf("healthz with the broker down: %d (the process is alive)", code)
	}
	status, h, out := l.post(t, "lamp-1", one)
	if status != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("submit with the broker down: %d %v %s", status, h, out)
	}
	proxy.Restore()
	l.waitReady(t)
	if status, _, out := l.post(t, "lamp-1", one); status != 202 {
		t.Fatalf("submit after recovery: %d %s", status, out)
	}
	proxy.Cut()
	brokertest.Eventually(t, 5*time.Second, "readyz still 200 after the broker went away", func() bool { return l.get(t, "/readyz") == 503 })
	if status, _, _ := l.post(t, "lamp-1", one); status != 503 {
		t.Fatalf("submit after the broker went away again: %d", status)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 1 {
		t.Fatalf("queue holds %d, want only the one accepted command", n)
	}
}

func TestLiveFullQueueGives503(t *testing.T) {
	top := brokertest.TopologyWith(t, func(top *contracts.Topology) { top.CommandsMaxLength = 1 })
	l := startLive(t, brokertest.AMQPURL(), top)
	l.waitReady(t)
	accepted := 0
	var status int
	var h http.Header
	for range 4 {
		if status, h, _ = l.post(t, "lamp-1", one); status != 202 {
			break
		}
		accepted++
	}
	if status != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("submit into a full queue: %d", status)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != accepted {
		t.Fatalf("queue holds %d, but %d were accepted", n, accepted)
	}
}

func TestLiveGracefulShutdown(t *testing.T) {
	top := brokertest.Topology(t)
	l := startLive(t, brokertest.AMQPURL(), top, func(c *cashier.Config) { c.DrainDelay = 300 * time.Millisecond })
	l.waitReady(t)
	l.cancel()
	// During the drain delay /readyz says no, so load balancers move
	// traffic away, while requests that still arrive are served.
	if code := l.get(t, "/readyz"); code != 503 {
		t.Fatalf("readyz while draining: %d", code)
	}
	if status, _, out := l.post(t, "lamp-1", one); status != 202 {
		t.Fatalf("submit while draining: %d %s", status, out)
	}
	select {
	case err := <-l.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		l.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("cashier did not stop")
	}
	if _, err := http.Get(l.base + "/healthz"); err == nil {
		t.Fatal("listener still open after shutdown")
	}
}

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
