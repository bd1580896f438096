package devicesim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cafe/cmd/internal/devicesim"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const wait = 5 * time.Second

var quiet = brokertest.Quiet

// fleet is a running devicesim.Fleet with ids of the test's own.
type fleet struct {
	*devicesim.Fleet
	ids  []string
	stop func() // stops the fleet and waits for Run; idempotent
}

// runFleet starts a fleet of cfg.Count devices (default 1) named after the
// test, waits until it is online, and stops it and clears its retained
// presence when the test ends.
func runFleet(t *testing.T, cfg devicesim.Config) *fleet {
	t.Helper()
	if cfg.MQTTURL == "" {
		cfg.MQTTURL = brokertest.MQTTURL()
	}
	if cfg.Count == 0 {
		cfg.Count = 1
	}
	cfg.Pattern = brokertest.ID(t, "d") + "-%d"
	cfg.First = 1
	cfg.MaxBackoff = 200 * time.Millisecond
	f, err := devicesim.New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet stats when the test failed: %+v", f.Stats().Totals)
		}
		stop()
		c := f.Stats().Totals
		if c.Received != c.Executed+c.FailuresInjected+c.Duplicates+c.Invalid+c.Dropped {
			t.Errorf("stats do not add up: %+v", c)
		}
		clearPresence(t, f.IDs())
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := f.WaitOnline(wctx); err != nil {
		t.Fatal(err)
	}
	return &fleet{Fleet: f, ids: f.IDs(), stop: stop}
}

// link is a clean-session MQTT client of the test's own.
func link(t *testing.T, cfg mqttlink.Config) *mqttlink.Link {
	t.Helper()
	cfg.CleanSession = true
	return brokertest.MQTT(t, cfg)
}

var connected = brokertest.Connected

func publish(t *testing.T, l *mqttlink.Link, m mqttlink.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := l.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// clearPresence deletes the retained presence of ids, so that test runs
// leave nothing behind in the broker.
func clearPresence(t *testing.T, ids []string) {
	t.Helper()
	l := link(t, mqttlink.Config{ClientID: brokertest.ID(t, "janitor")})
	for _, id := range ids {
		publish(t, l, mqttlink.Message{Topic: contracts.PresenceTopic(id), QoS: 1, Retained: true})
	}
}

// inbox records what a subscription receives, in order, per topic.
type inbox struct {
	mu   sync.Mutex
	msgs map[string][]received
}

type received struct {
	payload []byte
	at      time.Time
}

func (b *inbox) handle(topic string, payload []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.msgs == nil {
		b.msgs = map[string][]received{}
	}
	b.msgs[topic] = append(b.msgs[topic], received{payload: append([]byte(nil), payload...), at: time.Now()})
}

func (b *inbox) on(topic string) []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs[topic]...)
}

// barista plays the pipeline's side, as an independent implementation of
// the contract: its own route, commands on devices/{id}/commands/{route}/{key},
// replies from devices/+/replies/{route}/+.
type barista struct {
	t     *testing.T
	route string
	link  *mqttlink.Link
	inbox
}

func newBarista(t *testing.T) *barista {
	t.Helper()
	b := &barista{t: t, route: brokertest.ID(t, "r")}
	b.link = link(t, mqttlink.Config{ClientID: brokertest.ID(t, "barista")})
	b.subscribe(contracts.RepliesFilter(b.route))
	connected(t, b.link)
	return b
}

// subscribe adds a filter (for replies on unusual topics).
func (b *barista) subscribe(filter string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.link.Subscribe(ctx, filter, 1, b.handle); err != nil {
		b.t.Fatal(err)
	}
}

// send publishes a command on the barista's route and returns its key.
func (b *barista) send(device, key, payload string) string {
	b.t.Helper()
	if key == "" {
		key = contracts.NewCommandID()
	}
	publish(b.t, b.link, mqttlink.Message{Topic: contracts.CommandTopic(device, b.route, key), Payload: []byte(payload), QoS: 1})
	return key
}

// replies waits for n replies to key and returns them.
func (b *barista) replies(device, key string, n int) []received {
	b.t.Helper()
	topic := contracts.ReplyTopic(device, b.route, key)
	brokertest.Eventually(b.t, wait, "no reply on "+topic, func() bool { return len(b.on(topic)) >= n })
	return b.on(topic)
}

// call sends a command and returns its reply.
func (b *barista) call(device, payload string) string {
	b.t.Helper()
	return string(b.replies(device, b.send(device, "", payload), 1)[0].payload)
}

// silent says that key got no reply: the sentinel's reply arrived, and
// commands are answered in parallel, so this only holds for commands that
// never answer (which is what it checks).
func (b *barista) silent(device, key string) {
	b.t.Helper()
	if got := b.call(device, `{"jsonrpc":"2.0","id":"sentinel","method":"echo"}`); !strings.HasPrefix(got, `{"jsonrpc":"2.0","id":"sentinel",`) {
		b.t.Fatalf("sentinel reply %s", got)
	}
	if got := b.on(contracts.ReplyTopic(device, b.route, key)); len(got) != 0 {
		b.t.Fatalf("got %d replies, want none: %s", len(got), got[0].payload)
	}
}

// errorOf decodes a reply that must be an error response with the given id.
func errorOf(t *testing.T, reply, id string) *contracts.Error {
	t.Helper()
	var r contracts.Response
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("reply %s: %v", reply, err)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != id || r.Error == nil || r.Result != nil {
		t.Fatalf("reply %s: want an error response with id %s", reply, id)
	}
	return r.Error
}

// watchPresence subscribes to a device's presence and records every
// payload: the retained one first, then live changes.
func watchPresence(t *testing.T, url, id string) *inbox {
	t.Helper()
	var b inbox
	l := link(t, mqttlink.Config{URL: url, ClientID: brokertest.ID(t, "watch")})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := l.Subscribe(ctx, contracts.PresenceTopic(id), 1, b.handle); err != nil {
		t.Fatal(err)
	}
	connected(t, l)
	return &b
}

// presenceIs waits until the last presence b saw is online == want.
func presenceIs(t *testing.T, b *inbox, id string, want bool) {
	t.Helper()
	brokertest.Eventually(t, wait, "presence never became the expected one", func() bool {
		got := b.on(contracts.PresenceTopic(id))
		if len(got) == 0 {
			return false
		}
		online, err := contracts.ParsePresence(got[len(got)-1].payload)
		return err == nil && online == want
	})
}

// statsAre waits until the fleet's totals are want (work runs in parallel
// with the replies, so counters may trail the last reply for a moment).
func statsAre(t *testing.T, f *fleet, want devicesim.Counters) {
	t.Helper()
	var last devicesim.Counters
	brokertest.Eventually(t, wait, fmt.Sprintf("stats never became %+v; the last ones are logged above", want), func() bool {
		got := f.Stats().Totals
		if got != last {
			t.Logf("stats %+v", got)
			last = got
		}
		return got == want
	})
}
