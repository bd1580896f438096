package barista_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDevice is a device written from the device contract alone: it
// subscribes to its commands, announces presence, and answers by method.
type testDevice struct {
	id   string
	link *mqttlink.Link
	mu   sync.Mutex
	got  []received
}

type received struct{ topic, payload string }

func (d *testDevice) received() []received {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]received(nil), d.got...)
}

func startDevice(t *testing.T, online bool) *testDevice {
	t.Helper()
	d := &testDevice{id: brokertest.ID(t, "dev")}
	link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: d.id, CleanSession: true,
		Will: &mqttlink.Message{Topic: contracts.PresenceTopic(d.id), Payload: []byte(`{"online":false}`), QoS: 1, Retained: true}}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	d.link = link
	stop := link.Background()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.Subscribe(ctx, contracts.CommandsFilter(d.id), 1, d.onCommand); err != nil {
		t.Fatal(err)
	}
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	presence := `{"online":true}`
	if !online {
		presence = `{"online":false}`
	}
	if err := link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(d.id), Payload: []byte(presence), QoS: 1, Retained: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Clear the retained presence so the broker keeps nothing of this test.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(d.id), QoS: 1, Retained: true})
		stop()
	})
	return d
}

func (d *testDevice) onCommand(topic string, payload []byte) {
	d.mu.Lock()
	d.got = append(d.got, received{topic, string(payload)})
	d.mu.Unlock()
	var req struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params json.RawMessage `json:"params"`
	}
	_ = json.Unmarshal(payload, &req)
	if req.ID == nil {
		return // one-way
	}
	var reply string
	switch req.Method {
	case "echo":
		reply = `{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":` + string(req.Params) + `}`
	case "fail":
		reply = `{"jsonrpc":"2.0","id":` + string(req.ID) + `,"error":{"code":1000,"message":"jammed","data":{"motor":2}}}`
	case "garbage":
		reply = `this is not json`
	case "wrong-id":
		reply = `{"jsonrpc":"2.0","id":"someone-else","result":1}`
	case "huge": // a valid response, over the barista's reply limit
		reply = `{"jsonrpc":"2.0","id":` + string(req.ID) + `,"result":"` + strings.Repeat("x", 300<<10) + `"}`
	default: // "never" and anything else: silence
		return
	}
	replyTopic, _ := contracts.ReplyTopicFor(topic)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.link.Publish(ctx, mqttlink.Message{Topic: replyTopic, Payload: []byte(reply), QoS: 1})
	}()
}

// rig is one barista on the real brokers, with its own prefix.
type rig struct {
	t    *testing.T
	top  contracts.Topology
	pub  *amqplink.Publisher  // publishes commands as the cashier would
	conn *amqp.Connection     // reads results and dead letters
	prom *prometheus.Registry // the last barista's metrics
}

func newRig(t *testing.T) *rig {
	t.Helper()
	top := brokertest.Topology(t)
	pub := brokertest.Publisher(t, top, identity.Cashier)
	conn := brokertest.Dial(t)
	t.Cleanup(func() { conn.Close() })
	return &rig{t: t, top: top, pub: pub, conn: conn}
}

// startBarista runs a barista whose command consumer reaches RabbitMQ at
// amqpURL; stop cancels it and waits for Run to return.
func (r *rig) startBarista(amqpURL string, cfg barista.Config) (b *barista.Barista, stop func()) {
	t := r.t
	t.Helper()
	consume, err := amqplink.New(amqplink.Config{URL: amqpURL, Topology: r.top, Name: "barista-consume", MaxBackoff: 200 * time.Millisecond, Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	publish, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Barista), Topology: r.top, Name: "barista-publish", Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	results := amqplink.NewPublisher(publish, quiet())
	if cfg.Route == "" {
		cfg.Route = barista.NewRoute()
	}
	mq, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: "cafe-barista-" + cfg.Route + "-" + brokertest.ID(t, "x"), ForgetSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, mq) // stopped after the barista: cleanups run last-in first-out
	r.prom = prometheus.NewRegistry()
	b, err = barista.New(cfg, r.top, barista.Links{Commands: consume, Results: results, Devices: mq}, r.prom, quiet())
	if err != nil {
		t.Fatal(err)
	}
	stop = brokertest.Start(t, b.Run, consume.Run, publish.Run, results.Run)
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mq.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return b, stop
}

// send queues a command as the cashier would and returns its command id.
func (r *rig) send(device, body string, timeout time.Duration) string {
	r.t.Helper()
	req, err := contracts.ParseRequest([]byte(body))
	if err != nil {
		r.t.Fatal(err)
	}
	now := time.Now()
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: device,
		MsgID: string(req.ID), Deadline: now.Add(timeout), AcceptedAt: now}
	r.publish(amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body)})
	return meta.CommandID
}

func (r *rig) publish(m amqp.Publishing) {
	r.t.Helper()
	brokertest.Publish(r.t, r.pub, r.top.CommandsExchange(), contracts.RoutingKeyCommand, m)
}

// next waits for the next message in queue.
func (r *rig) next(queue string, within time.Duration) amqp.Delivery {
	r.t.Helper()
	ch, err := r.conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			r.t.Fatal(err)
		}
		if ok {
			return d
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("nothing arrived in %s within %v", queue, within)
	return amqp.Delivery{}
}

func (r *rig) result(within time.Duration) (amqp.Delivery, contracts.Response) {
	r.t.Helper()
	d := r.next(r.top.ResultsQueue(), within)
	var resp contracts.Response
	if err := json.Unmarshal(d.Body, &resp); err != nil {
		r.t.Fatalf("result %q is not JSON: %v", d.Body, err)
	}
	return d, resp
}

func TestDeviceReplyIsTheResultUnchanged(t *testing.T) {
	r := newRig(t)
	b, _ := r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	dev := startDevice(t, true)
	body := `{"jsonrpc":"2.0","method":"echo","params":{"z":1,"a":[true,null]},"id":"m-1"}`
	cmdID := r.send(dev.id, body, 5*time.Second)

	d, resp := r.result(5 * time.Second)
	want := `{"jsonrpc":"2.0","id":"m-1","result":{"z":1,"a":[true,null]}}`
	if string(d.Body) != want {
		t.Fatalf("result %s, want the device's reply %s", d.Body, want)
	}
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil || meta.ClientID != "app-1" || meta.DeviceID != dev.id || meta.Outcome != contracts.OutcomeReply ||
		meta.MsgID != `"m-1"` || d.MessageId != cmdID {
		t.Fatalf("result meta %+v (err %v), message id %s want %s", meta, err, d.MessageId, cmdID)
	}
	_ = resp
	got := dev.received()
	if len(got) != 1 || got[0].payload != body || got[0].topic != contracts.CommandTopic(dev.id, b.Route(), cmdID) {
		t.Fatalf("device received %+v; want the app's bytes on %s", got, contracts.CommandTopic(dev.id, b.Route(), cmdID))
	}
}

func TestOutcomes(t *testing.T) {
	r := newRig(t)
	r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	online := startDevice(t, true)
	offline := startDevice(t, false)

	for _, tc := range []struct {
		name      string
		device    *testDevice
		body      string
		timeout   time.Duration
		code      contracts.Code // 0: the device's own reply
		wantBody  string
		deviceGot bool
	}{
		{"device error passes through", online, `{"jsonrpc":"2.0","method":"fail","id":2}`, 5 * time.Second, 0,
			`{"jsonrpc":"2.0","id":2,"error":{"code":1000,"message":"jammed","data":{"motor":2}}}`, true},
		{"offline device", offline, `{"jsonrpc":"2.0","method":"echo","id":3}`, 5 * time.Second, contracts.CodeDeviceOffline, "", false},
		{"silent device times out", online, `{"jsonrpc":"2.0","method":"never","id":4}`, 300 * time.Millisecond, contracts.CodeDeviceTimeout, "", true},
		{"expired before taken", online, `{"jsonrpc":"2.0","method":"echo","id":5}`, -time.Second, contracts.CodeExpired, "", false},
		{"garbage reply", online, `{"jsonrpc":"2.0","method":"garbage","id":6}`, 5 * time.Second, contracts.CodeBadDeviceReply, "", true},
		{"reply with another id", online, `{"jsonrpc":"2.0","method":"wrong-id","id":7}`, 5 * time.Second, contracts.CodeBadDeviceReply, "", true},
		{"oversized reply", online, `{"jsonrpc":"2.0","method":"huge","id":8}`, 5 * time.Second, contracts.CodeBadDeviceReply, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.device.received())
			sent := time.Now()
			r.send(tc.device.id, tc.body, tc.timeout)
			d, resp := r.result(5 * time.Second)
			took := time.Since(sent)
			if tc.code == 0 {
				if string(d.Body) != tc.wantBody {
					t.Fatalf("result %s, want %s", d.Body, tc.wantBody)
				}
			} else {
				if resp.Error == nil || resp.Error.Code != tc.code {
					t.Fatalf("result %s, want error %d", d.Body, tc.code)
				}
				var want contracts.Request
				want, _ = contracts.ParseRequest([]byte(tc.body))
				if string(resp.ID) != string(want.ID) {
					t.Fatalf("error result id %s, want the app's %s", resp.ID, want.ID)
				}
			}
			if tc.code == contracts.CodeDeviceTimeout && (took < tc.timeout || took > tc.timeout+2*time.Second) {
				t.Fatalf("timeout result after %v for a %v deadline", took, tc.timeout)
			}
			if tc.code == contracts.CodeDeviceOffline && took > 2*time.Second {
				t.Fatalf("offline result took %v; it must come at once", took)
			}
			if got := len(tc.device.received()) > before; got != tc.deviceGot {
				t.Fatalf("device received the command: %v, want %v", got, tc.deviceGot)
			}
		})
	}
}

func TestOneWayCommandReachesDeviceWithoutResult(t *testing.T) {
	r := newRig(t)
	r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	dev := startDevice(t, true)
	r.send(dev.id, `{"jsonrpc":"2.0","method":"blink"}`, 5*time.Second)
	r.send(dev.id, `{"jsonrpc":"2.0","method":"echo","params":[1],"id":1}`, 5*time.Second) // sentinel
	d, _ := r.result(5 * time.Second)
	if !strings.Contains(string(d.Body), `"id":1`) {
		t.Fatalf("first result %s is not the sentinel's: the one-way command produced a result", d.Body)
	}
	brokertest.Eventually(t, 5*time.Second, "the one-way command did not reach the device", func() bool {
		for _, g := range dev.received() {
			if g.payload == `{"jsonrpc":"2.0","method":"blink"}` {
				return true
			}
		}
		return false
	})
	if n := brokertest.QueueDepth(t, r.top.ResultsQueue()); n != 0 {
		t.Fatalf("%d extra results", n)
	}
}

func TestPoisonIsDeadLetteredAndTheRestFlows(t *testing.T) {
	r := newRig(t)
	r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	dev := startDevice(t, true)
	good := contracts.CommandMeta{ClientID: "app-1", DeviceID: dev.id, Deadline: time.Now().Add(time.Minute), AcceptedAt: time.Now()}
	poisons := []amqp.Publishing{
		{Body: []byte(`garbage`), Headers: good.Headers()},
		{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":1}`)},                              // no headers
		{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":1}`), Headers: amqp.Table{"x": 1}}, // foreign headers
		{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":2}`), Headers: good.Headers()},     // id disagrees with header
		{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":3,"pad":"` + strings.Repeat("x", 2<<20) + `"}`), Headers: good.Headers()},
	}
	for _, p := range poisons {
		r.publish(p)
	}
	r.send(dev.id, `{"jsonrpc":"2.0","method":"echo","params":[1],"id":9}`, 5*time.Second)
	d, _ := r.result(5 * time.Second)
	if !strings.Contains(string(d.Body), `"id":9`) {
		t.Fatalf("result %s", d.Body)
	}
	for range poisons {
		dl := r.next(r.top.DeadQueue(), 5*time.Second)
		deaths, _ := dl.Headers["x-death"].([]any)
		if len(deaths) == 0 {
			t.Fatalf("dead letter without x-death: %v", dl.Headers)
		}
		if reason := deaths[0].(amqp.Table)["reason"]; reason != "rejected" {
			t.Fatalf("dead-letter reason %v, want rejected", reason)
		}
	}
	if len(dev.received()) != 1 {
		t.Fatalf("poison reached the device: %+v", dev.received())
	}
}

func TestRedeliveryKeepsTheRepeatKey(t *testing.T) {
	r := newRig(t)
	proxy, viaProxy := brokertest.ViaProxy(t, brokertest.AMQPURLAs(identity.Barista))
	first, _ := r.startBarista(viaProxy, barista.Config{})
	dev := startDevice(t, true)

	cmdID := r.send(dev.id, `{"jsonrpc":"2.0","method":"never","id":1}`, 3*time.Second)
	brokertest.Eventually(t, 5*time.Second, "first barista never sent the command", func() bool { return len(dev.received()) == 1 })
	proxy.Cut() // the first barista loses RabbitMQ mid-command: its delivery goes back to the queue

	second, _ := r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	brokertest.Eventually(t, 5*time.Second, "command was not redelivered to the second barista", func() bool { return len(dev.received()) >= 2 })
	got := dev.received()
	_, route1, key1, _ := contracts.ParseCommandTopic(got[0].topic)
	_, route2, key2, _ := contracts.ParseCommandTopic(got[1].topic)
	if key1 != cmdID || key2 != cmdID {
		t.Fatalf("repeat keys %s and %s, want the command id %s both times", key1, key2, cmdID)
	}
	if route1 != first.Route() || route2 != second.Route() {
		t.Fatalf("routes %s then %s, want %s then %s", route1, route2, first.Route(), second.Route())
	}
	_, resp := r.result(5 * time.Second)
	if resp.Error == nil || resp.Error.Code != contracts.CodeDeviceTimeout {
		t.Fatalf("result %+v", resp)
	}
}

func TestShutdownHandsBackCommandsInHand(t *testing.T) {
	r := newRig(t)
	_, stop := r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{Grace: 200 * time.Millisecond})
	dev := startDevice(t, true)
	r.send(dev.id, `{"jsonrpc":"2.0","method":"never","id":1}`, time.Minute)
	brokertest.Eventually(t, 5*time.Second, "command not sent", func() bool { return len(dev.received()) == 1 })
	begin := time.Now()
	stop()
	if took := time.Since(begin); took > 3*time.Second {
		t.Fatalf("shutdown took %v with a 200ms grace", took)
	}
	brokertest.Eventually(t, 5*time.Second, "the command in hand did not go back to the queue", func() bool {
		return brokertest.QueueDepth(t, r.top.CommandsQueue()) == 1
	})
	if n := brokertest.QueueDepth(t, r.top.ResultsQueue()); n != 0 {
		t.Fatalf("a handed-back command produced %d results", n)
	}
}

// crashingMQTT is the real MQTT link, except that publishing a command whose
// method is "crash" panics, as a bug triggered by one command would.
type crashingMQTT struct{ *mqttlink.Link }

func (c crashingMQTT) Publish(ctx context.Context, m mqttlink.Message) error {
	if strings.Contains(string(m.Payload), `"method":"crash"`) {
		panic("a command that crashes its worker")
	}
	return c.Link.Publish(ctx, m)
}

func TestCommandThatKeepsCrashingIsDeadLetteredAfterTheLimit(t *testing.T) {
	r := newRig(t)
	r.top.DeliveryLimit = 3
	brokertest.DeleteTopology(t, r.top) // and again with the lower limit
	brokertest.Declare(t, r.top)
	mq, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "barista"), ForgetSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, mq) // stopped after the barista
	consume, _ := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Barista), Topology: r.top, Name: "consume", Passive: true}, quiet())
	publish, _ := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Barista), Topology: r.top, Name: "publish", Passive: true}, quiet())
	results := amqplink.NewPublisher(publish, quiet())
	b, err := barista.New(barista.Config{}, r.top, barista.Links{Commands: consume, Results: results, Devices: crashingMQTT{mq}}, prometheus.NewRegistry(), quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, b.Run, consume.Run, publish.Run, results.Run)
	dev := startDevice(t, true)

	// The queue must exist with the new limit before publishing.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := results.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	crash := r.send(dev.id, `{"jsonrpc":"2.0","method":"crash","id":1}`, time.Minute)
	r.send(dev.id, `{"jsonrpc":"2.0","method":"echo","params":[2],"id":2}`, time.Minute)

	// The other command is not held up by the crashing one.
	d, _ := r.result(10 * time.Second)
	if !strings.Contains(string(d.Body), `"id":2`) {
		t.Fatalf("result %s", d.Body)
	}
	dl := r.next(r.top.DeadQueue(), 20*time.Second)
	if dl.MessageId != crash {
		t.Fatalf("dead letter %s, want the crashing command %s", dl.MessageId, crash)
	}
	deaths, _ := dl.Headers["x-death"].([]any)
	if len(deaths) == 0 || deaths[0].(amqp.Table)["reason"] != "delivery_limit" {
		t.Fatalf("x-death %v, want reason delivery_limit", dl.Headers["x-death"])
	}
	if n := brokertest.QueueDepth(t, r.top.ResultsQueue()); n != 0 {
		t.Fatalf("the crashing command produced %d results", n)
	}
}

// TestQueueWaitMetric: cafe_barista_queue_wait_seconds says how long the
// command the barista took last had waited since the cashier accepted it
// (cafe status reads it as the age of the oldest waiting command).
func TestQueueWaitMetric(t *testing.T) {
	r := newRig(t)
	_, stop := r.startBarista(brokertest.AMQPURLAs(identity.Barista), barista.Config{})
	defer stop()
	offline := startDevice(t, false)
	accepted := time.Now().Add(-3 * time.Second)
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: offline.id,
		MsgID: "1", Deadline: time.Now().Add(time.Minute), AcceptedAt: accepted}
	r.publish(amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(`{"jsonrpc":"2.0","method":"m","id":1}`)})
	r.result(10 * time.Second) // offline: handled at once
	families, err := r.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "cafe_barista_queue_wait_seconds" {
			if got := f.GetMetric()[0].GetGauge().GetValue(); got < 3 || got > 10 {
				t.Fatalf("queue wait %.2fs, want about 3s", got)
			}
			return
		}
	}
	t.Fatal("no cafe_barista_queue_wait_seconds")
}
