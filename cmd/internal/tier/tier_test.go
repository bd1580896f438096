package tier_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"cafe/cmd/internal/tier"
	"cafe/cmd/internal/tier/tiertest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scene is one scratch tier of two edges with two devices and an app.
type scene struct {
	tr     *tiertest.Tier
	d1, d2 string // devices, d1 to be on edge-1, d2 on edge-2
	app    string
	appPW  string
	marker string // the device id of quiesce's markers, registered nowhere
}

func newScene(t *testing.T) *scene {
	t.Helper()
	s := &scene{d1: brokertest.ID(t, "d1"), d2: brokertest.ID(t, "d2"), app: brokertest.ID(t, "app"), marker: brokertest.ID(t, "marker")}
	token := sha256.Sum256([]byte("token of " + s.app))
	s.appPW = brokertest.Key().SessionKey().AppPassword(s.app, token)
	reg := fmt.Sprintf("clients:\n  - id: %s\n    token_sha256: %s\n    devices: [\"*\"]\n", s.app, hex.EncodeToString(token[:])) +
		brokertest.DevicesYAML(s.d1, s.d2)
	s.tr = tiertest.Start(t, 2, reg)
	return s
}

// TestTier checks the bridges of a core and two edges: what goes down,
// what comes up, each exactly once, and who may do what on an edge.
func TestTier(t *testing.T) {
	t.Parallel()
	s := newScene(t)
	t.Run("command on the core reaches a device on edge-2 at QoS 1, once", s.commandGoesDown)
	t.Run("reply and retained presence reach the core, once", s.replyAndPresenceGoUp)
	t.Run("a device's last will on an edge reaches the core", s.willGoesUp)
	t.Run("a result reaches an app on an edge, and on the core", s.resultGoesDown)
	t.Run("logins and ACLs hold on every broker", s.accessEnforced)
	t.Run("a crashed edge's devices go offline on the core (the janitor)", s.janitor)
	t.Run("an edge restarted cleanly gets what the core queued meanwhile", s.edgeRestart)
	t.Run("a core that crashed gets the edges' retained presence back", s.coreCrash)
}

func (s *scene) commandGoesDown(t *testing.T) {
	core, e1, e2 := s.tr.Core(), s.tr.Edge(1), s.tr.Edge(2)
	device := listen(t, tiertest.DeviceURL(e2, s.d2), s.d2, contracts.CommandsFilter(s.d2))
	spies := []*inbox{listen(t, tiertest.As(core, identity.Admin), brokertest.ID(t, "spy"), "devices/#"),
		listen(t, tiertest.As(e1, identity.Admin), brokertest.ID(t, "spy"), "devices/#"),
		listen(t, tiertest.As(e2, identity.Admin), brokertest.ID(t, "spy"), "devices/#")}
	topic := contracts.CommandTopic(s.d2, "r1", "k-down")
	publishAs(t, core, identity.Barista, topic, `{"jsonrpc":"2.0","method":"echo","id":1}`, false)
	device.waitFor(t, topic, 1)
	s.quiesce(t, append(spies, device)...)
	onceAtQoS1(t, device, topic, "the device on edge-2")
	for i, spy := range spies {
		if n := len(spy.messages(topic)); n != 1 {
			t.Errorf("%s saw the command %d times, want once (0: not carried; more: a loop)", []string{"core", "edge-1", "edge-2"}[i], n)
		}
	}
}

func (s *scene) replyAndPresenceGoUp(t *testing.T) {
	core, e1, e2 := s.tr.Core(), s.tr.Edge(1), s.tr.Edge(2)
	barista := listen(t, tiertest.As(core, identity.Barista), brokertest.ID(t, "cafe-barista"), "devices/+/replies/#", "devices/+/presence")
	otherEdge := listen(t, tiertest.As(e1, identity.Admin), brokertest.ID(t, "spy"), "devices/#")
	thisEdge := listen(t, tiertest.As(e2, identity.Admin), brokertest.ID(t, "spy"), "devices/#")
	reply, _ := contracts.ReplyTopicFor(contracts.CommandTopic(s.d2, "r1", "k-up"))
	presence := contracts.PresenceTopic(s.d2)
	dev := dial(t, tiertest.DeviceURL(e2, s.d2), s.d2, true, nil)
	wait(t, dev.Publish(presence, 1, true, `{"online":true}`))
	wait(t, dev.Publish(reply, 1, false, `{"jsonrpc":"2.0","result":1,"id":1}`))
	barista.waitFor(t, reply, 1)
	barista.waitFor(t, presence, 1)
	s.quiesce(t, barista, otherEdge, thisEdge)
	onceAtQoS1(t, barista, reply, "the barista on the core")
	if n := len(barista.messages(presence)); n != 1 {
		t.Errorf("the barista got the presence %d times, want once", n)
	}
	if n := len(thisEdge.messages(reply)); n != 1 {
		t.Errorf("edge-2 saw the reply %d times, want once (more: it came back down)", n)
	}
	if n := len(otherEdge.messages(reply)) + len(otherEdge.messages(presence)); n != 0 {
		t.Errorf("edge-1 saw %d of edge-2's replies and presence, want none (up is one way)", n)
	}
	retainedOn(t, core, presence, `{"online":true}`)
}

// retainedOn checks that a new subscriber to topic on b gets want, retained.
func retainedOn(t *testing.T, b tier.Broker, topic, want string) {
	t.Helper()
	late := listen(t, tiertest.As(b, identity.Barista), brokertest.ID(t, "cafe-barista"), topic)
	late.waitFor(t, topic, 1)
	if m := late.messages(topic)[0]; !m.Retained() || string(m.Payload()) != want {
		t.Errorf("a new subscriber on %s got %s %q (retained %v), want %s retained", b.Name, topic, m.Payload(), m.Retained(), want)
	}
}

func (s *scene) willGoesUp(t *testing.T) {
	core, e1 := s.tr.Core(), s.tr.Edge(1)
	presence := contracts.PresenceTopic(s.d1)
	proxy := brokertest.NewProxy(t, e1.Addr())
	viaProxy := strings.Replace(tiertest.DeviceURL(e1, s.d1), e1.Addr(), proxy.Addr(), 1)
	dev := dial(t, viaProxy, s.d1, true, &will{presence, `{"online":false}`})
	wait(t, dev.Publish(presence, 1, true, `{"online":true}`))
	barista := listen(t, tiertest.As(core, identity.Barista), brokertest.ID(t, "cafe-barista"), presence)
	barista.waitFor(t, presence, 1)
	proxy.Cut() // the device vanishes without a DISCONNECT: the edge publishes its will
	barista.waitFor(t, presence, 2)
	if got := barista.messages(presence); string(got[1].Payload()) != `{"online":false}` {
		t.Fatalf("the core's presence after the device vanished: %q, want its will", got[1].Payload())
	}
	retainedOn(t, core, presence, `{"online":false}`)
}

func (s *scene) resultGoesDown(t *testing.T) {
	core, e1 := s.tr.Core(), s.tr.Edge(1)
	topic := contracts.ResultsTopic(s.app)
	onEdge := listen(t, tiertest.URL(e1, s.app, s.appPW), s.app, topic)
	coreSpy := listen(t, tiertest.As(core, identity.Admin), brokertest.ID(t, "spy"), topic)
	publishAs(t, core, identity.Caller, topic, `{"jsonrpc":"2.0","result":"r","id":7}`, false)
	onEdge.waitFor(t, topic, 1)
	s.quiesce(t, onEdge, coreSpy)
	onceAtQoS1(t, onEdge, topic, "the app on edge-1")
	if n := len(coreSpy.messages(topic)); n != 1 {
		t.Errorf("the core carried the result %d times, want once", n)
	}
}

func (s *scene) accessEnforced(t *testing.T) {
	core, e1, e2 := s.tr.Core(), s.tr.Edge(1), s.tr.Edge(2)
	for _, b := range []tier.Broker{core, e1, e2} {
		if err := brokertest.ConnectOnce(b.URL(), brokertest.ID(t, "anon")); err == nil {
			t.Errorf("%s let an anonymous client in", b.Name)
		}
		if err := brokertest.ConnectOnce(tiertest.URL(b, s.d1, "wrong"), s.d1); err == nil {
			t.Errorf("%s let %s in with a wrong password", b.Name, s.d1)
		}
		if err := brokertest.ConnectOnce(tiertest.DeviceURL(b, s.d1), s.d2); err == nil {
			t.Errorf("%s let %s take %s's client id", b.Name, s.d1, s.d2)
		}
	}
	victim := listen(t, tiertest.DeviceURL(e2, s.d2), s.d2, contracts.CommandsFilter(s.d2))
	thief := listen(t, tiertest.DeviceURL(e1, s.d1), s.d1, contracts.CommandsFilter(s.d2), "#")
	barista := listen(t, tiertest.As(core, identity.Barista), brokertest.ID(t, "cafe-barista"), "devices/+/replies/#")
	app := listen(t, tiertest.URL(e1, s.app, s.appPW), s.app, "#")

	// d1 on edge-1 (the thief's own connection: a second one with its
	// client id would take over the session and leave the thief deaf)
	// forges a command and a reply for d2, and a result for the app;
	// cafe-bridge's own login on the core forges a command.
	forger := thief.c
	forged, _ := contracts.ReplyTopicFor(contracts.CommandTopic(s.d2, "r1", "forged"))
	wait(t, forger.Publish(contracts.CommandTopic(s.d2, "evil", "forged"), 1, false, "forged"))
	wait(t, forger.Publish(forged, 1, false, "forged"))
	wait(t, forger.Publish(contracts.ResultsTopic(s.app), 1, false, "forged"))
	publishAs(t, core, identity.Bridge, contracts.CommandTopic(s.d2, "evil", "bridge"), "forged", false)

	real := contracts.CommandTopic(s.d2, "r1", "real")
	publishAs(t, core, identity.Barista, real, "real", false)
	victim.waitFor(t, real, 1)
	s.quiesce(t, victim, thief, barista, app)
	if got := victim.all(); len(got) != 1 {
		t.Errorf("d2 got %d commands (%v), want only the barista's", len(got), topics(got))
	}
	if got := thief.all(); len(got) != 0 {
		t.Errorf("d1 read %v through edge-1, want nothing of d2's", topics(got))
	}
	if got := barista.all(); len(got) != 0 {
		t.Errorf("the barista got %v, want no forged reply", topics(got))
	}
	if got := app.all(); len(got) != 0 {
		t.Errorf("the app got %v, want no forged result", topics(got))
	}
}

func (s *scene) janitor(t *testing.T) {
	core, e1, e2 := s.tr.Core(), s.tr.Edge(1), s.tr.Edge(2)
	admin := func(b tier.Broker) *mqttlink.Link {
		l, err := mqttlink.New(mqttlink.Config{URL: tiertest.As(b, identity.Admin), ClientID: brokertest.ID(t, "janitor"), CleanSession: true}, brokertest.Quiet())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	j := &tier.Janitor{Core: admin(core), Edges: map[string]*mqttlink.Link{"edge-1": admin(e1), "edge-2": admin(e2)}, Log: brokertest.Quiet()}
	brokertest.Start(t, j.Run, j.Core.Run, j.Edges["edge-1"].Run, j.Edges["edge-2"].Run)

	// d1 online on edge-1; d2 online on edge-1 too, and on edge-2, where it
	// moved (its retained presence there since replyAndPresenceGoUp).
	presence1, presence2 := contracts.PresenceTopic(s.d1), contracts.PresenceTopic(s.d2)
	d1 := dial(t, tiertest.DeviceURL(e1, s.d1), s.d1, true, &will{presence1, `{"online":false}`})
	wait(t, d1.Publish(presence1, 1, true, `{"online":true}`))
	publishAs(t, e1, identity.Admin, presence2, `{"online":true}`, true) // a stale copy on edge-1
	brokertest.Eventually(t, 10*time.Second, "the janitor never learnt the edges' presence", func() bool {
		return j.Online("edge-1", s.d1) && j.Online("edge-1", s.d2) && j.Online("edge-2", s.d2)
	})
	s.markUp(t) // the janitor reads the edges; the core has d1's presence once edge-1's bridge carried it
	retainedOn(t, core, presence1, `{"online":true}`)

	watch := listen(t, tiertest.As(core, identity.Barista), brokertest.ID(t, "cafe-barista"), presence1)
	watch.waitFor(t, presence1, 1)       // the retained {"online":true}
	s.tr.Kill("edge-1", syscall.SIGKILL) // no last will for d1
	brokertest.Eventually(t, 10*time.Second, "the core still says the crashed edge's device is online", func() bool {
		got := watch.messages(presence1)
		return string(got[len(got)-1].Payload()) == `{"online":false}`
	})
	retainedOn(t, core, presence1, `{"online":false}`)
	retainedOn(t, core, presence2, `{"online":true}`) // online on edge-2: left alone
	s.tr.Start("edge-1")
	s.tr.WaitBridges()
	publishAs(t, e1, identity.Admin, presence2, "", true) // clear the stale copy
}

func (s *scene) edgeRestart(t *testing.T) {
	core, e2 := s.tr.Core(), s.tr.Edge(2)
	dev := dial(t, tiertest.DeviceURL(e2, s.d2), s.d2, false, nil) // a persistent session on edge-2
	wait(t, dev.Subscribe(contracts.CommandsFilter(s.d2), 1, nil))
	dev.Disconnect(100)
	s.tr.Kill("edge-2", syscall.SIGTERM) // saves its database: the device's session, the bridge's
	brokertest.Eventually(t, 10*time.Second, "the core never said edge-2's bridge is down", func() bool {
		return s.tr.BridgeStates()["edge-2"] == "0"
	})
	const n = 5
	var sent []string
	for i := range n {
		topic := contracts.CommandTopic(s.d2, "r1", fmt.Sprintf("while-down-%d", i))
		publishAs(t, core, identity.Barista, topic, "queued", false)
		sent = append(sent, topic)
	}
	s.tr.Start("edge-2")
	s.tr.WaitBridges()
	got := &inbox{}
	back := dialWith(t, tiertest.DeviceURL(e2, s.d2), s.d2, false, nil, got.add)
	defer back.Disconnect(0)
	got.bind(t, back, s.d2)
	defer func() { wait(t, back.Unsubscribe(mqttlink.SyncTopicPrefix+s.d2)) }()
	brokertest.Eventually(t, 10*time.Second, "the device did not get the commands published while its edge was down", func() bool {
		return len(got.all()) >= n
	})
	s.quiesce(t, got)
	for _, topic := range sent {
		if c := len(got.messages(topic)); c != 1 {
			t.Errorf("%s arrived %d times, want once", topic, c)
		}
	}
	wait(t, back.Unsubscribe(contracts.CommandsFilter(s.d2)))
}

func (s *scene) coreCrash(t *testing.T) {
	presence := contracts.PresenceTopic(s.d2) // retained on edge-2 since replyAndPresenceGoUp
	retainedOn(t, s.tr.Core(), presence, `{"online":true}`)
	s.tr.Kill("core", syscall.SIGKILL) // before its first autosave: it comes back empty
	s.tr.Start("core")
	s.tr.WaitBridges()
	retainedOn(t, s.tr.Core(), presence, `{"online":true}`)
}

// --- MQTT clients of the test's own ------------------------------------------

// inbox records what a client received: the test's messages apart from
// the markers of quiesce and sync (payloads beginning "marker ").
type inbox struct {
	mu      sync.Mutex
	msgs    []paho.Message
	markers map[string]bool // payloads
	c       paho.Client     // the client, once bound
	id      string          // its client id
}

const markerPrefix = "marker "

func (in *inbox) add(_ paho.Client, m paho.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if p := string(m.Payload()); strings.HasPrefix(p, markerPrefix) {
		if in.markers == nil {
			in.markers = map[string]bool{}
		}
		in.markers[p] = true
		return
	}
	in.msgs = append(in.msgs, m)
}

// bind makes in's client c (of client id id) answer sync, subscribing it
// to its own cafe/sync topic (which every login may use, cafe.acl).
func (in *inbox) bind(t *testing.T, c paho.Client, id string) {
	t.Helper()
	in.c, in.id = c, id
	wait(t, c.Subscribe(mqttlink.SyncTopicPrefix+id, 1, in.add))
}

// sync returns once in has everything its broker queued for it before the
// call: it publishes a marker to the client's own sync topic and waits for
// it to come back, and a broker sends a client's messages in order
// (mqttlink.Link.Sync does the same).
func (in *inbox) sync(t *testing.T) {
	t.Helper()
	p := newMarker()
	wait(t, in.c.Publish(mqttlink.SyncTopicPrefix+in.id, 1, false, p))
	in.waitMarker(t, p)
}

func (in *inbox) waitMarker(t *testing.T, p string) {
	t.Helper()
	brokertest.Eventually(t, 10*time.Second, "marker "+p+" never arrived", func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.markers[p]
	})
}

var markers atomic.Int64

// newMarker is a payload no other marker of the test binary has.
func newMarker() string { return fmt.Sprintf("%s%d", markerPrefix, markers.Add(1)) }

// quiesce returns once each of ins has everything that what the test did
// before the call could bring it over the bridges, duplicates and echoes
// included: ordered evidence instead of a time window. A bridge is one
// MQTT connection each way, and a broker sends each client's messages in
// the order it queued them, so a marker sent after the test's messages
// arrives after them and after anything they caused on the way. quiesce
// sends a command marker down to every edge, a reply marker up from
// every edge, a command marker down again (an echo caught going up, then
// brought down again, arrives before it), and then syncs each of ins
// with its own broker.
func (s *scene) quiesce(t *testing.T, ins ...*inbox) {
	t.Helper()
	s.markDown(t)
	s.markUp(t)
	s.markDown(t)
	for _, in := range ins {
		in.sync(t)
	}
}

// markDown publishes a command marker on the core and waits for it on
// every edge (commands go down to each).
func (s *scene) markDown(t *testing.T) {
	t.Helper()
	var edges []*inbox
	filter := contracts.CommandsFilter(s.marker)
	for i := range s.tr.Plan.Edges {
		edges = append(edges, listen(t, tiertest.As(s.tr.Edge(i+1), identity.Admin), brokertest.ID(t, "marks"), filter))
	}
	p := newMarker()
	publishAs(t, s.tr.Core(), identity.Barista, contracts.CommandTopic(s.marker, "r1", "marker"), p, false)
	for _, e := range edges {
		e.waitMarker(t, p)
	}
}

// markUp publishes a reply marker on every edge and waits for each on the
// core (replies go up from each).
func (s *scene) markUp(t *testing.T) {
	t.Helper()
	topic, _ := contracts.ReplyTopicFor(contracts.CommandTopic(s.marker, "r1", "marker"))
	core := listen(t, tiertest.As(s.tr.Core(), identity.Barista), brokertest.ID(t, "cafe-barista"), topic)
	for i := range s.tr.Plan.Edges {
		p := newMarker()
		publishAs(t, s.tr.Edge(i+1), identity.Admin, topic, p, false)
		core.waitMarker(t, p)
	}
}

func (in *inbox) all() []paho.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]paho.Message(nil), in.msgs...)
}

func (in *inbox) messages(topic string) []paho.Message {
	var out []paho.Message
	for _, m := range in.all() {
		if m.Topic() == topic {
			out = append(out, m)
		}
	}
	return out
}

func (in *inbox) waitFor(t *testing.T, topic string, n int) {
	t.Helper()
	brokertest.Eventually(t, 10*time.Second, fmt.Sprintf("%s: want %d messages, got %d", topic, n, len(in.messages(topic))), func() bool {
		return len(in.messages(topic)) >= n
	})
}

// listen connects to rawURL as clientID and subscribes to filters at QoS 1.
func listen(t *testing.T, rawURL, clientID string, filters ...string) *inbox {
	t.Helper()
	in := &inbox{}
	c := dialWith(t, rawURL, clientID, true, nil, in.add)
	in.bind(t, c, clientID)
	for _, f := range filters {
		wait(t, c.Subscribe(f, 1, in.add))
	}
	return in
}

type will struct{ topic, payload string }

func dial(t *testing.T, rawURL, clientID string, clean bool, w *will) paho.Client {
	t.Helper()
	return dialWith(t, rawURL, clientID, clean, w, nil)
}

// dialWith connects as clientID with rawURL's login, never reconnecting;
// on gets what arrives for subscriptions the session already had.
func dialWith(t *testing.T, rawURL, clientID string, clean bool, w *will, on paho.MessageHandler) paho.Client {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	o := paho.NewClientOptions().AddBroker("tcp://" + u.Host).SetClientID(clientID).SetUsername(u.User.Username()).SetPassword(pw).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetDefaultPublishHandler(on)
	if w != nil {
		o.SetWill(w.topic, w.payload, 1, true)
	}
	c := paho.NewClient(o)
	wait(t, c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// publishAs publishes once on b as service s at QoS 1 and waits for the PUBACK.
func publishAs(t *testing.T, b tier.Broker, s identity.Service, topic, payload string, retained bool) {
	t.Helper()
	c := dial(t, tiertest.As(b, s), brokertest.ID(t, string(s)), true, nil)
	wait(t, c.Publish(topic, 1, retained, payload))
	c.Disconnect(0)
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTT: %v", tok.Error())
	}
}

// onceAtQoS1 fails the test unless in got topic exactly once, at QoS 1.
func onceAtQoS1(t *testing.T, in *inbox, topic, who string) {
	t.Helper()
	if got := in.messages(topic); len(got) != 1 || got[0].Qos() != 1 {
		t.Fatalf("%s got %s %d times (QoS %v), want once at QoS 1", who, topic, len(got), qosOf(got))
	}
}

func qosOf(ms []paho.Message) []byte {
	var out []byte
	for _, m := range ms {
		out = append(out, m.Qos())
	}
	return out
}

func topics(ms []paho.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Topic())
	}
	return out
}
