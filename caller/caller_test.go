package caller_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = brokertest.Quiet

type rig struct {
	t    *testing.T
	top  contracts.Topology
	pub  *amqplink.Publisher
	conn *amqp.Connection
}

func newRig(t *testing.T) *rig {
	t.Helper()
	top := brokertest.Topology(t)
	pub := brokertest.Publisher(t, top, identity.Barista)
	conn := brokertest.Dial(t)
	t.Cleanup(func() { conn.Close() })
	return &rig{t: t, top: top, pub: pub, conn: conn}
}

// startCaller runs a caller whose MQTT link reaches the broker at mqttURL.
func (r *rig) startCaller(mqttURL string, cfg caller.Config) (stop func()) {
	t := r.t
	t.Helper()
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Caller), Topology: r.top, Name: "caller", MaxBackoff: 200 * time.Millisecond, Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	mq, err := mqttlink.New(mqttlink.Config{URL: mqttURL, ClientID: brokertest.ID(t, "caller"), MaxBackoff: 200 * time.Millisecond, ForgetSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, mq) // stopped after the caller: cleanups run last-in first-out
	c, err := caller.New(cfg, r.top, caller.Links{Results: link, MQTT: mq}, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, c.Run, link.Run)
}

// result publishes a result as a barista would.
func (r *rig) result(clientID, body string) {
	r.t.Helper()
	r.publish(amqp.Publishing{
		MessageId: contracts.NewCommandID(),
		Headers: contracts.ResultMeta{ClientID: clientID, DeviceID: "lamp-1", MsgID: "1", AcceptedAt: time.Now(),
			Outcome: contracts.OutcomeReply}.Headers(),
		Body: []byte(body),
	})
}

func (r *rig) publish(m amqp.Publishing) {
	r.t.Helper()
	brokertest.Publish(r.t, r.pub, r.top.ResultsExchange(), contracts.RoutingKeyResult, m)
}

// app is an app's MQTT client listening to its results.
type app struct {
	id   string
	stop func() // disconnects; a persistent session is forgotten unless kept
	mu   sync.Mutex
	got  []string
}

// startApp connects an app: with a clean session, or a persistent one that
// is kept when it stops (keep) or dropped.
func startApp(t *testing.T, id string, clean, keep bool) *app {
	t.Helper()
	a := &app{id: id}
	link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: "app-" + id, CleanSession: clean, ForgetSession: !keep}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	a.stop = brokertest.Run(t, link)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.Subscribe(ctx, contracts.ResultsTopic(id), 1, func(_ string, p []byte) {
		a.mu.Lock()
		a.got = append(a.got, string(p))
		a.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *app) results() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func TestResultReachesTheAppUnchangedAndIsAcked(t *testing.T) {
	r := newRig(t)
	r.startCaller(brokertest.MQTTURL(), caller.Config{})
	a := startApp(t, brokertest.ID(t, "app"), true, false)
	body := `{"jsonrpc":"2.0","id":"x-1","result":{"on":true}}`
	r.result(a.id, body)
	brokertest.Eventually(t, 5*time.Second, "result not delivered", func() bool { return len(a.results()) == 1 })
	if got := a.results()[0]; got != body {
		t.Fatalf("app got %s, want %s", got, body)
	}
	brokertest.Eventually(t, 5*time.Second, "delivered result still in the queue", func() bool {
		return brokertest.QueueDepth(t, r.top.ResultsQueue()) == 0
	})
}

func TestOfflineAppGetsResultsWhenItReturns(t *testing.T) {
	r := newRig(t)
	r.startCaller(brokertest.MQTTURL(), caller.Config{})
	id := brokertest.ID(t, "app")
	first := startApp(t, id, false, true) // persistent session, subscribed at QoS 1
	first.stop()

	for i := range 3 {
		r.result(id, `{"jsonrpc":"2.0","id":`+string(rune('1'+i))+`,"result":null}`)
	}
	brokertest.Eventually(t, 5*time.Second, "results not taken by the caller", func() bool {
		return brokertest.QueueDepth(t, r.top.ResultsQueue()) == 0
	})
	again := startApp(t, id, false, false)
	brokertest.Eventually(t, 5*time.Second, "results queued while the app was away were not delivered", func() bool {
		return len(again.results()) == 3
	})
}

func TestUndeliverableResultsAreDeadLettered(t *testing.T) {
	r := newRig(t)
	r.startCaller(brokertest.MQTTURL(), caller.Config{})
	for _, m := range []amqp.Publishing{
		{Body: []byte(`{"jsonrpc":"2.0","id":1,"result":1}`)},                                                       // no headers
		{Body: []byte(`{"jsonrpc":"2.0","id":1,"result":1}`), Headers: amqp.Table{contracts.HeaderClientID: "a/#"}}, // wildcard client
		{Body: []byte(`{"jsonrpc":"2.0","id":1,"result":1}`), Headers: amqp.Table{contracts.HeaderClientID: 42}},    // wrong type
		{Body: []byte(`not json`), Headers: amqp.Table{contracts.HeaderClientID: "app-1"}},
		{Body: []byte(`[1,2]`), Headers: amqp.Table{contracts.HeaderClientID: "app-1"}},
		{Body: []byte(`{"pad":"` + strings.Repeat("x", contracts.MaxResultBytes) + `"}`), Headers: amqp.Table{contracts.HeaderClientID: "app-1"}},
	} {
		r.publish(m)
	}
	brokertest.Eventually(t, 5*time.Second, "poison results not dead-lettered", func() bool {
		return brokertest.QueueDepth(t, r.top.DeadQueue()) == 6
	})
}

func TestCallerWithoutMQTTLeavesResultsToTheOthers(t *testing.T) {
	r := newRig(t)
	u, _ := url.Parse(brokertest.MQTTURL())
	proxy := brokertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	proxy.Cut()
	r.startCaller(u.String(), caller.Config{}) // cannot reach Mosquitto
	a := startApp(t, brokertest.ID(t, "app"), true, false)

	// While it is the only caller, results wait in the queue, untouched.
	r.result(a.id, `{"jsonrpc":"2.0","id":0,"result":0}`)
	r.startCaller(brokertest.MQTTURL(), caller.Config{}) // a healthy one
	for i := 1; i <= 20; i++ {
		r.result(a.id, `{"jsonrpc":"2.0","id":`+strconv.Itoa(i)+`,"result":1}`)
	}
	brokertest.Eventually(t, 10*time.Second, "the healthy caller did not deliver every result", func() bool {
		return len(a.results()) == 21
	})
	if n := brokertest.QueueDepth(t, r.top.DeadQueue()); n != 0 {
		t.Fatalf("%d results dead-lettered", n)
	}
	proxy.Restore() // and the first caller joins in without trouble
	r.result(a.id, `{"jsonrpc":"2.0","id":99,"result":1}`)
	brokertest.Eventually(t, 10*time.Second, "result after the outage not delivered", func() bool { return len(a.results()) == 22 })
}

func TestCallerWithMQTTDownStopsAtOnceAndKeepsNothing(t *testing.T) {
	r := newRig(t)
	u, _ := url.Parse(brokertest.MQTTURL())
	proxy := brokertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	proxy.Cut()
	stop := r.startCaller(u.String(), caller.Config{Grace: 5 * time.Second})
	r.result("app-1", `{"jsonrpc":"2.0","id":1,"result":1}`)
	begin := time.Now()
	stop()
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %v; a caller that holds nothing has nothing to wait for", took)
	}
	if n := brokertest.QueueDepth(t, r.top.ResultsQueue()); n != 1 {
		t.Fatalf("results queue holds %d, want the 1 result untouched", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  caller.Config
		want contracts.Setting // the setting the error must name
	}{
		{"negative concurrency", caller.Config{Concurrency: -1}, caller.SettingConcurrency},
		{"wait for MQTT past the consumer timeout", caller.Config{WaitMQTT: time.Hour}, caller.SettingWaitMQTT},
		{"negative grace", caller.Config{Grace: -1}, caller.SettingGrace},
		{"negative publish timeout", caller.Config{PublishTimeout: -time.Second}, caller.SettingPublishTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := caller.New(tc.cfg, contracts.DefaultTopology(), caller.Links{}, prometheus.NewRegistry(), quiet())
			if got := contracts.InvalidSettings(err); !slices.Contains(got, tc.want) || !strings.Contains(err.Error(), tc.want.Env) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	if _, err := caller.New(caller.Config{Instance: "a/b"}, contracts.DefaultTopology(), caller.Links{}, prometheus.NewRegistry(), quiet()); err == nil {
		t.Error("instance a/b accepted")
	}
}

// reject takes the next message of queue and rejects it, so RabbitMQ
// dead-letters it with reason "rejected".
func (r *rig) reject(queue string) {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	var d amqp.Delivery
	brokertest.Eventually(r.t, 5*time.Second, "nothing to reject in "+queue, func() bool {
		var ok bool
		d, ok, _ = ch.Get(queue, false)
		return ok
	})
	if err := d.Reject(false); err != nil {
		r.t.Fatal(err)
	}
}

func TestDeadLetteredCommandIsReportedToItsApp(t *testing.T) {
	r := newRig(t)
	r.startCaller(brokertest.MQTTURL(), caller.Config{})
	a := startApp(t, brokertest.ID(t, "app"), true, false)
	cashier := brokertest.Publisher(t, r.top, identity.Cashier)

	send := func(msgID string) {
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: a.id, DeviceID: "lamp-1", MsgID: msgID,
			Deadline: time.Now().Add(time.Minute), AcceptedAt: time.Now()}
		body := `{"jsonrpc":"2.0","method":"m"}`
		if msgID != "" {
			body = `{"jsonrpc":"2.0","method":"m","id":` + msgID + `}`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cashier.Publish(ctx, r.top.CommandsExchange(), contracts.RoutingKeyCommand,
			amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	send("") // a one-way command: nobody waits, no notice
	r.reject(r.top.CommandsQueue())
	send(`"cmd-7"`)
	r.reject(r.top.CommandsQueue())
	r.result(a.id, `{"jsonrpc":"2.0","id":"other","result":1}`) // an ordinary result still flows

	brokertest.Eventually(t, 5*time.Second, "no notice and result", func() bool { return len(a.results()) == 2 })
	var notice contracts.Response
	for _, got := range a.results() {
		if strings.Contains(got, "cmd-7") {
			if err := json.Unmarshal([]byte(got), &notice); err != nil {
				t.Fatal(err)
			}
		}
	}
	if string(notice.ID) != `"cmd-7"` || notice.Error == nil || notice.Error.Code != contracts.CodeDeadLettered ||
		!strings.Contains(string(notice.Error.Data), "cafe dead replay") {
		t.Fatalf("notice %+v", notice)
	}
	// The dead letters themselves stay for inspection and replay.
	if n := brokertest.QueueDepth(t, r.top.DeadQueue()); n != 2 {
		t.Fatalf("dead queue holds %d, want both dead letters", n)
	}
	brokertest.Eventually(t, 5*time.Second, "notices not consumed", func() bool {
		return brokertest.QueueDepth(t, r.top.DeadNotifyQueue()) == 0
	})
}
