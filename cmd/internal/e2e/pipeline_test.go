package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/devicesim"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// client is an app registered with the cashier.
type client struct {
	id, token string
}

// pipeline is one test's cafe: its AMQP prefix, client registry and
// devices, and the processes started on them. Like a proc, its methods take
// the test or subtest calling them; a process belongs to the one that
// started it.
type pipeline struct {
	t        *testing.T // the test that owns it
	top      contracts.Topology
	env      []string // the settings every process of this pipeline shares
	client   client   // entitled to devices named devices+"-*"
	devices  string   // prefix of this test's device ids (see registeredDevices)
	registry string   // path of the client registry file
	fleets   int      // fleets started so far: each takes the next device numbers
	cashier  *service
	baristas []*service
	callers  []*service
}

// setup is what newPipeline starts.
type setup struct {
	baristas, callers int
	cashierEnv        []string // added to the cashier's environment
	baristaEnv        []string // added to every barista's environment
	callerEnv         []string // added to every caller's environment
	tls               bool     // every link over TLS (see tlsEnv)
	// topology, when set, changes the pipeline's topology (its limits)
	// before it is declared: the services only check the topology
	// passively, so their CAFE_QUEUE_MAX_LENGTH and the like change
	// nothing on the broker.
	topology func(*contracts.Topology)
	// grants, when set, are the registry's apps: given the pipeline (its
	// client, device prefix), the apps and what each may command. By
	// default the pipeline's client alone, entitled to all its devices.
	grants func(p *pipeline) []grant
}

// newPipeline gives the test its own prefix, client and registry, starts
// a cashier and the baristas and callers asked for, and returns once all are
// ready and every barista and caller consumes its queue.
func newPipeline(t *testing.T, s setup) *pipeline {
	t.Helper()
	p := &pipeline{t: t, top: contracts.DefaultTopology(), devices: brokertest.ID(t, "dev")}
	p.top.Prefix = brokertest.ID(t, "e2e")
	if s.topology != nil {
		s.topology(&p.top)
	}
	// Registered first, so it runs last: after every process is gone.
	t.Cleanup(func() { brokertest.DeleteTopology(t, p.top) })
	brokertest.Declare(t, p.top) // as cafe-admin: the services only check it
	p.env = []string{"CAFE_AMQP_PREFIX=" + p.top.Prefix}
	cashierEnv := s.cashierEnv
	if s.tls {
		p.env = append(p.env, tlsEnv()...)
		cashierEnv = append(cashierTLSEnv(), cashierEnv...)
	}
	p.client = newClient(t)
	grants := []grant{{p.client, []string{p.devices + "-*"}}}
	if s.grants != nil {
		grants = s.grants(p)
	}
	p.registry = writeGrants(t, p.devices, grants...)

	p.cashier = startService(t, "cashier", "cashier",
		append(append([]string{"CAFE_CLIENTS_FILE=" + p.registry}, p.env...), cashierEnv...))
	if s.tls {
		p.cashier.scheme = "https"
	}
	for range s.baristas {
		p.addBarista(t, s.baristaEnv...)
	}
	for range s.callers {
		p.addCaller(t, s.callerEnv...)
	}
	p.cashier.waitReady(t)
	for _, w := range append(append([]*service{}, p.baristas...), p.callers...) {
		w.waitReady(t)
	}
	p.waitConsumers(t, p.top.CommandsQueue(), len(p.baristas))
	p.waitConsumers(t, p.top.ResultsQueue(), len(p.callers))
	return p
}

// url is the cashier's base URL.
func (p *pipeline) url() string { return p.cashier.base() }

// addBarista starts another barista (not waiting for it), with a route the
// test knows.
func (p *pipeline) addBarista(t testing.TB, env ...string) *service {
	t.Helper()
	route := brokertest.ID(t, "b")
	b := startService(t, fmt.Sprintf("barista#%d", len(p.baristas)+1), "barista",
		append(append([]string{"CAFE_BARISTA_GRACE=3s", "CAFE_BARISTA_ROUTE=" + route}, p.env...), env...))
	b.route = route
	p.baristas = append(p.baristas, b)
	return b
}

// syncPresence returns once barista b has handled every presence message
// the MQTT broker took before this call. It publishes, after them, a
// presence message b cannot read for a device of this test, and waits for b
// to count it as invalid: the broker forwards presence to b in the order it
// took it, and b handles it one message at a time in arrival order.
func (p *pipeline) syncPresence(t testing.TB, b *service) {
	t.Helper()
	before := b.counter(t, "cafe_barista_invalid_presence_total")
	link := connect(t, "sync", nil)
	publish(t, link, contracts.PresenceTopic(p.devices+"-sync"), []byte("not presence"), false)
	brokertest.Eventually(t, resultWait, b.name+" never received the sync presence", func() bool {
		return b.counter(t, "cafe_barista_invalid_presence_total") > before
	})
}

// addCaller starts another caller (not waiting for it).
func (p *pipeline) addCaller(t testing.TB, env ...string) *service {
	t.Helper()
	c := startService(t, fmt.Sprintf("caller#%d", len(p.callers)+1), "caller", append(append([]string{}, p.env...), env...))
	p.callers = append(p.callers, c)
	return c
}

// waitConsumers waits until queue has n consumers: the workers not only
// connected but consuming, so no command reaches one worker only because
// another had not started yet.
func (p *pipeline) waitConsumers(t testing.TB, queue string, n int) {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	got := -1
	brokertest.Eventually(t, readyTimeout, fmt.Sprintf("queue %s: want %d consumers", queue, n), func() bool {
		got = consumers(conn, queue)
		return got == n
	})
}

// consumers is the consumer count of queue, or -1 when it cannot be read
// (the queue is not declared yet).
func consumers(conn *amqp.Connection, queue string) int {
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Consumers
}

// newClient is an app of the test's own, with an MQTT login whose password
// is the one the cashier's POST /v1/sessions gives it (the session key is
// derived from this machine's auth key, like the cashier's).
func newClient(t testing.TB) client {
	t.Helper()
	c := client{id: brokertest.ID(t, "app"), token: randomToken()}
	brokertest.Login(t, c.id, brokertest.Key().SessionKey().AppPassword(c.id, identity.SHA256(c.token)), "app")
	return c
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "tok-" + hex.EncodeToString(b[:])
}

// devicesPerTest is how many numbered devices (prefix-1, prefix-2, ...) the
// registry of a test holds, besides the named ones (namedDevices); each
// fleet a test starts takes the next devicesPerFleet numbers.
const (
	devicesPerTest  = 32
	devicesPerFleet = 8
)

// namedDevices are the suffixes of the devices tests name themselves.
var namedDevices = []string{"gone", "odd", "err", "sync", "evil"}

// registeredDevices lists the device ids a test with device prefix may use.
func registeredDevices(prefix string) []string {
	ids := make([]string, 0, devicesPerTest+len(namedDevices))
	for i := 1; i <= devicesPerTest; i++ {
		ids = append(ids, fmt.Sprintf("%s-%d", prefix, i))
	}
	for _, n := range namedDevices {
		ids = append(ids, prefix+"-"+n)
	}
	return ids
}

// writeRegistry writes a registry (the format of contracts/registry) with
// one client entitled to patterns and the test's devices registered, in
// the test's temp dir.
func writeRegistry(t testing.TB, c client, devices string, patterns ...string) string {
	t.Helper()
	return writeGrants(t, devices, grant{c, patterns})
}

// grant is an app of a registry and the device patterns it may command.
type grant struct {
	client   client
	patterns []string
}

// writeGrants is writeRegistry for several apps.
func writeGrants(t testing.TB, devices string, grants ...grant) string {
	t.Helper()
	doc := "clients:\n"
	for _, g := range grants {
		sum := sha256.Sum256([]byte(g.client.token))
		quoted := make([]string, len(g.patterns))
		for i, p := range g.patterns {
			quoted[i] = strconv.Quote(p)
		}
		doc += fmt.Sprintf("  - id: %s\n    token_sha256: %s\n    devices: [%s]\n",
			g.client.id, hex.EncodeToString(sum[:]), strings.Join(quoted, ", "))
	}
	doc += brokertest.DevicesYAML(registeredDevices(devices)...)
	path := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fleet is a devicesim process.
type fleet struct {
	*proc
	ids     []string
	first   int    // the number of its first device
	stats   string // its --stats-file
	secrets string // its --secrets-file: each device's MQTT login
}

// startDevices runs n simulated devices named after the pipeline's device
// prefix (so the pipeline's client may command them), with extra devicesim
// flags, and waits until they are all online. Their retained presence is
// cleared when the test ends.
// scene is what most tests start from, in parallel with the others: a
// pipeline, a fleet of n simulated devices started with flags, and the
// pipeline's app, subscribed to its results.
func scene(t *testing.T, s setup, n int, flags ...string) (*pipeline, *fleet, *app) {
	t.Helper()
	t.Parallel()
	p := newPipeline(t, s)
	devices := p.startDevices(t, n, flags...)
	return p, devices, pipelineApp(p)
}

func (p *pipeline) startDevices(t testing.TB, n int, flags ...string) *fleet {
	t.Helper()
	first := p.fleets*devicesPerFleet + 1 // numbered apart from the other fleets
	p.fleets++
	if n > devicesPerFleet || first+n-1 > devicesPerTest {
		t.Fatalf("fleet %d of %d devices: the test registry holds devices 1 to %d, %d per fleet", p.fleets, n, devicesPerTest, devicesPerFleet)
	}
	pattern := p.devices + "-%d"
	f := &fleet{first: first}
	for i := first; i < first+n; i++ {
		f.ids = append(f.ids, fmt.Sprintf(pattern, i))
	}
	clearPresenceAtEnd(t, f.ids...) // before start: runs after the fleet stopped
	f.secrets = deviceLogins(t, f.ids...)
	p.runFleet(t, "devicesim", f, flags...)
	return f
}

// runFleet starts devicesim for the devices of f (its ids, numbering and
// logins), with a stats file of its own, and waits until they are online.
func (p *pipeline) runFleet(t testing.TB, name string, f *fleet, flags ...string) {
	t.Helper()
	f.stats = filepath.Join(t.TempDir(), "stats.json")
	args := append([]string{"--count", strconv.Itoa(len(f.ids)), "--pattern", p.devices + "-%d", "--first", strconv.Itoa(f.first),
		"--stats-file", f.stats, "--secrets-file", f.secrets}, flags...)
	f.proc = start(t, name, "devicesim", p.env, args...)
	f.waitOutput(t, fmt.Sprintf("%d devices online", len(f.ids)), readyTimeout)
}

// deviceLogins makes an MQTT login for each device (bound to its id, as
// the registry's would be) and returns a secrets file for devicesim.
func deviceLogins(t testing.TB, ids ...string) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "%s %s\n", id, brokertest.Device(t, id))
	}
	name := filepath.Join(t.TempDir(), "secrets.txt")
	if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// stopAndStats stops the fleet gracefully and returns what it counted.
func (f *fleet) stopAndStats(t testing.TB) devicesim.Stats {
	t.Helper()
	f.stop(t, stopTimeout)
	b, err := os.ReadFile(f.stats)
	if err != nil {
		t.Fatalf("devicesim stats: %v", err)
	}
	var s devicesim.Stats
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("devicesim stats %s: %v", b, err)
	}
	return s
}

// quietLog discards the logs of the test's own MQTT links.
var quietLog = slog.New(slog.DiscardHandler)

// connect opens an MQTT link for the test itself, subscribed to subs (topic
// filter to handler) before it counts as connected, and closes it at the end
// of the test.
func connect(t testing.TB, kind string, subs map[string]mqttlink.Handler) *mqttlink.Link {
	t.Helper()
	link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, kind), CleanSession: true}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for filter, h := range subs {
		if err := link.Subscribe(ctx, filter, 1, h); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Run(t, link)
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatalf("test MQTT client: %v", err)
	}
	return link
}

// publish sends one message from the test at QoS 1 and waits for the
// broker to take it.
func publish(t testing.TB, link *mqttlink.Link, topic string, payload []byte, retained bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.Publish(ctx, mqttlink.Message{Topic: topic, Payload: payload, QoS: 1, Retained: retained}); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// clearPresenceAtEnd deletes the retained presence of devices when the test
// ends (an empty retained message), so the shared broker keeps nothing of
// the test. Call it before starting anything that announces them.
func clearPresenceAtEnd(t testing.TB, devices ...string) {
	t.Helper()
	t.Cleanup(func() {
		link, stop := cleanLink(t, brokertest.ID(t, "clear"))
		if link == nil {
			return
		}
		defer stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, d := range devices {
			if err := link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(d), QoS: 1, Retained: true}); err != nil {
				t.Errorf("clearing the presence of %s: %v", d, err)
				return
			}
		}
	})
}

// command is what a test device or watcher received.
type command struct {
	topic   string
	payload []byte
}

// watcher records what the MQTT broker forwards on a topic filter; on a
// device's commands filter it sees what the device is sent.
type watcher struct {
	mu  sync.Mutex
	got []command
}

func watch(t testing.TB, filter string) *watcher {
	t.Helper()
	w := &watcher{}
	connect(t, "watch", map[string]mqttlink.Handler{filter: func(topic string, payload []byte) {
		w.mu.Lock()
		w.got = append(w.got, command{topic, append([]byte(nil), payload...)})
		w.mu.Unlock()
	}})
	return w
}

// messages returns what was seen so far.
func (w *watcher) messages() []command {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]command(nil), w.got...)
}

// waitFor waits until n messages were seen.
func (w *watcher) waitFor(t testing.TB, n int, what string) {
	t.Helper()
	brokertest.Eventually(t, resultWait, what, func() bool { return len(w.messages()) >= n })
}

// testDevice is a device the test plays itself: it records every command
// and answers with whatever reply returns (nil: no answer).
type testDevice struct {
	id   string
	link *mqttlink.Link

	mu   sync.Mutex
	got  []command
	sent sync.WaitGroup
}

// newTestDevice connects a test-owned device with the given id, announcing
// its presence as online, and answering each command with reply(payload).
func newTestDevice(t testing.TB, id string, reply func(payload []byte) []byte) *testDevice {
	t.Helper()
	clearPresenceAtEnd(t, id)
	d := &testDevice{id: id}
	d.link = connect(t, "tdev", map[string]mqttlink.Handler{
		contracts.CommandsFilter(id): func(topic string, payload []byte) {
			payload = append([]byte(nil), payload...)
			d.mu.Lock()
			d.got = append(d.got, command{topic, payload})
			d.mu.Unlock()
			answer := reply(payload)
			replyTopic, ok := contracts.ReplyTopicFor(topic)
			if answer == nil || !ok {
				return
			}
			d.sent.Add(1)
			go func() { // a handler must not block on the PUBACK
				defer d.sent.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = d.link.Publish(ctx, mqttlink.Message{Topic: replyTopic, Payload: answer, QoS: 1})
			}()
		},
	})
	t.Cleanup(d.sent.Wait) // runs before the link closes
	publish(t, d.link, contracts.PresenceTopic(id), []byte(`{"online":true}`), true)
	return d
}

// commands returns what the device received so far.
func (d *testDevice) commands() []command {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]command(nil), d.got...)
}
