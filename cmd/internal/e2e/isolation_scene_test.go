package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// maxTimeout is the isolation pipeline's CAFE_BARISTA_MAX_TIMEOUT: the
// longest a barista works on a command whatever deadline its message says.
const maxTimeout = 3 * time.Second

// newIsolation starts the pipeline of two tenants: A may command devices
// 1 and 2, B devices 3, 4 and evil (all registered), and each a pattern
// that matches no registered device; the administrator's
// watchers, then the intruders, are listening before anything is sent.
func newIsolation(t *testing.T) *isolation {
	t.Helper()
	iso := &isolation{tally: &tally{}}
	b := newClient(t)
	iso.p = newPipeline(t, setup{baristas: 1, callers: 1, baristaEnv: []string{"CAFE_BARISTA_MAX_TIMEOUT=" + maxTimeout.String()},
		grants: func(p *pipeline) []grant {
			return []grant{
				{p.client, []string{p.devices + "-1", p.devices + "-2", p.devices + "-99*"}}, // -99* none registered
				{b, []string{p.devices + "-3", p.devices + "-4", p.devices + "-evil", p.devices + "-88*"}},
			}
		}})
	p := iso.p
	iso.presence = watch(t, "devices/+/presence") // every device's: a filter cannot name the test's alone
	iso.oracles = []*watcher{watch(t, "devices/+/commands/#"), watch(t, "devices/+/replies/#"), iso.presence,
		watch(t, "clients/+/results"), watch(t, "cafe/sync/#"), watch(t, "bench/#")}
	fleet := p.startDevices(t, 4)
	iso.a = &tenant{name: "A", devices: fleet.ids[:2], app: bareApp(t, p, p.client)}
	iso.offline = iso.a.online(t)
	iso.b = &tenant{name: "B", devices: fleet.ids[2:], app: bareApp(t, p, b)}
	iso.intruders(t)
	iso.b.devices = append(iso.b.devices, iso.evil.id)
	return iso
}

// bareApp is an app of client c on p's cashier not yet on MQTT.
func bareApp(t testing.TB, p *pipeline, c client) *app {
	a := &app{base: p.url(), client: c, http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}}
	t.Cleanup(a.http.CloseIdleConnections)
	return a
}

// online connects the tenant's app with a persistent session (clean
// session false, kept when it goes away: stop), subscribed to its results.
func (tn *tenant) online(t testing.TB) (stop func()) {
	t.Helper()
	s := tn.app.session(t)
	cfg, err := s.MQTT("", false)
	if err != nil {
		t.Fatal(err)
	}
	forgetMQTTSessionAtEnd(t, s.ClientID)
	link, err := mqttlink.New(cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := link.Subscribe(ctx, contracts.ResultsTopic(s.ClientID), 1, tn.app.onResult); err != nil {
		t.Fatal(err)
	}
	stop = brokertest.Run(t, link)
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatalf("app %s on MQTT with its session: %v", tn.name, err)
	}
	return stop
}

// intruder is one MQTT connection of an identity that tries what it may
// not: it subscribes to filters it may not read (forbidden) and publishes
// where it may not write.
type intruder struct {
	name, id, password string
	c                  paho.Client
	own                func(topic string) bool // what it may read

	mu      sync.Mutex
	foreign map[string][]string // filter → topics heard that it may not read
	heard   int                 // messages on its own topics
}

// intruders connects the attacking identities: B's app (which is also how
// B gets its results), B's device evil (which also serves its own
// commands), and logins named with MQTT wildcards, as if the registry had
// let such ids through.
func (iso *isolation) intruders(t *testing.T) {
	t.Helper()
	p, b := iso.p, iso.b
	s := b.app.session(t)
	mine := contracts.ResultsTopic(b.app.client.id)
	bApp := iso.listen(t, "app B", s.Username, s.Password, func(topic string) bool { return topic == mine })
	subscribe(t, bApp.c, mine, func(_ paho.Client, m paho.Message) { b.app.onResult(m.Topic(), m.Payload()) })
	iso.evil = iso.device(t, p.devices+"-evil")
	machineWide(t, "cafe-isolation-wildcards.lock") // these names are the broker's, not the test's
	for _, name := range []string{"+", "#", p.devices + "-1/+"} {
		pw := randomToken()
		brokertest.Login(t, name, pw, "device") // after the others listen: $CONTROL traffic
		iso.wildcard(t, name, pw)
	}
}

// machineWide holds an exclusive lock on name in the temporary folder
// until the test ends: for what two runs of the suite on one machine (or
// one broker) cannot share, such as logins named "+" and "#".
func machineWide(t testing.TB, name string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), name), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // registered first: the lock outlives the logins' deletion
}

// device connects B's device id as itself: it answers its own commands
// like a device, and eavesdrops.
func (iso *isolation) device(t *testing.T, id string) *intruder {
	t.Helper()
	clearPresenceAtEnd(t, id)
	secret := brokertest.Device(t, id)
	own := "devices/" + id + "/commands/"
	in := iso.listen(t, "device "+id[len(iso.p.devices)+1:]+" of B", id, secret, func(topic string) bool { return strings.HasPrefix(topic, own) })
	subscribe(t, in.c, contracts.CommandsFilter(id), func(c paho.Client, m paho.Message) {
		reply, ok := contracts.ReplyTopicFor(m.Topic())
		req, err := contracts.ParseRequest(m.Payload())
		if !ok || err != nil {
			return
		}
		go c.Publish(reply, 1, false, `{"jsonrpc":"2.0","id":`+string(req.ID)+`,"result":"evil"}`)
	})
	if tok := in.c.Publish(contracts.PresenceTopic(id), 1, true, `{"online":true}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("presence of %s: %v", id, tok.Error())
	}
	return in
}

// wildcard connects a login whose name holds a wildcard or a slash (its
// client id the same), if the broker lets it in at all: what it can then
// reach is what the table counts.
func (iso *isolation) wildcard(t *testing.T, name, password string) {
	t.Helper()
	if err := brokertest.ConnectOnce(brokertest.MQTTURLOf(name, password), name); err != nil {
		t.Logf("the broker refuses a login named %q (%v): it attacks nothing", name, err)
		return
	}
	iso.wild = append(iso.wild, iso.listen(t, "login "+name, name, password, nil))
}

// listen connects user as itself (client id = user name) and subscribes
// to every forbidden filter.
func (iso *isolation) listen(t *testing.T, name, user, password string, own func(string) bool) *intruder {
	t.Helper()
	in := &intruder{name: name, id: user, password: password, own: own, foreign: map[string][]string{}}
	in.c, _ = brokertest.Hold(t, brokertest.MQTTURLOf(user, password), user)
	for _, f := range iso.forbidden() {
		subscribe(t, in.c, f[0], func(_ paho.Client, m paho.Message) { in.hear(f[0], m.Topic()) })
	}
	iso.listeners = append(iso.listeners, in)
	return in
}

func (in *intruder) hear(filter, topic string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.own != nil && in.own(topic) {
		in.heard++
		return
	}
	in.foreign[filter] = append(in.foreign[filter], topic)
}

// forbidden are the filters an intruder subscribes to: everything, other
// apps' results, every device's topics, the broker's control and
// statistics topics, and the pipeline's internal topics; each with how
// the table names it.
func (iso *isolation) forbidden() [][2]string {
	return [][2]string{{"#", "#"}, {"+/#", "+/#"}, {contracts.ResultsTopic(iso.p.client.id), "clients/{A}/results"},
		{"clients/+/results", "clients/+/results"}, {"devices/+/commands/#", "devices/+/commands/#"},
		{contracts.CommandsFilter(iso.p.devices + "-1"), "devices/{A's device}/commands/#"},
		{"devices/+/replies/#", "devices/+/replies/#"}, {"devices/+/presence", "devices/+/presence"},
		{"$CONTROL/#", "$CONTROL/#"}, {"$CONTROL/dynamic-security/v1/response", "$CONTROL/dynamic-security/v1/response"},
		{"$SYS/#", "$SYS/#"}, {"cafe/sync/#", "cafe/sync/# (internal)"}, {"bench/#", "bench/# (internal)"}}
}

// subscribe subscribes c to filter (QoS 1) with handler h. The broker may
// grant it: what it then delivers is what its ACL allows.
func subscribe(t testing.TB, c paho.Client, filter string, h paho.MessageHandler) {
	t.Helper()
	if tok := c.Subscribe(filter, 1, h); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to %s: %v", filter, tok.Error())
	}
}

// eavesdroppersHeardNothing judges the subscriptions: no intruder heard
// anything on a topic it may not read, and those with topics of their own
// heard those (so their subscriptions worked).
func (iso *isolation) eavesdroppersHeardNothing(t *testing.T) {
	t.Helper()
	for _, in := range iso.listeners {
		in.mu.Lock()
		for _, f := range iso.forbidden() {
			heard := in.foreign[f[0]]
			iso.tally.record(t, "MQTT", "subscribe to "+f[1]+", read what is not one's own", len(heard) > 0, in.name+" heard "+strings.Join(heard[:min(len(heard), 5)], " "))
		}
		if in.own != nil && in.heard == 0 {
			t.Errorf("control: %s heard nothing even on its own topics; its subscriptions prove nothing", in.name)
		}
		in.mu.Unlock()
	}
}
