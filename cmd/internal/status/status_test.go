package status_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/cmd/internal/deadletter"
	"cafe/cmd/internal/status"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// managementURL is the test broker's management API.
const managementURL = "http://127.0.0.1:15672"

func config(t *testing.T, top contracts.Topology, devices string, baristas ...string) status.Config {
	return status.Config{
		Topology:      top,
		ManagementURL: managementURL,
		User:          string(identity.Ops),
		Password:      brokertest.Key().ServicePassword(identity.Ops),
		AMQPURL:       brokertest.AMQPURLAs(identity.Ops),
		MQTT:          mqttlink.Config{URL: brokertest.MQTTURLAs(identity.Ops), ClientID: brokertest.ID(t, "status"), CleanSession: true},
		DevicePattern: devices,
		Baristas:      baristas,
		Timeout:       5 * time.Second,
	}
}

// fakeBarista serves a barista's /metrics: 2 breakers open, the last
// command waited 1.5 s.
func fakeBarista(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE cafe_barista_breakers_open gauge\ncafe_barista_breakers_open 2\n"+
			"# TYPE cafe_barista_queue_wait_seconds gauge\ncafe_barista_queue_wait_seconds 1.5\n")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

// knownState: 4 commands, one held unacked by a consumer (so 3 ready, 1
// unacked, 1 consumer); 2 consumers on the results queue; 3 dead letters
// (2 rejected, 1 delivery_limit); devices: 2 online, 1 offline.
func knownState(t *testing.T) (contracts.Topology, string) {
	t.Helper()
	top := brokertest.TopologyWith(t, func(tp *contracts.Topology) { tp.DeliveryLimit = 1 })
	conn := brokertest.Dial(t)
	t.Cleanup(func() { conn.Close() })
	ch, _ := conn.Channel()
	if err := amqplink.Declare(ch, top); err != nil {
		t.Fatal(err)
	}
	send := func() {
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", Deadline: time.Now().Add(time.Hour), AcceptedAt: time.Now()}
		if err := ch.Publish(top.CommandsExchange(), contracts.RoutingKeyCommand, false, false, amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	reject := func(d amqp.Delivery) error { return d.Reject(false) }
	requeue := func(d amqp.Delivery) error { return d.Nack(false, true) }
	for _, step := range []struct {
		send   bool
		settle func(d amqp.Delivery) error
	}{{true, reject}, {true, reject}, {true, requeue}, {false, requeue}} { // the limit is 1: a second requeue dead-letters
		if step.send {
			send()
		}
		brokertest.Eventually(t, 5*time.Second, "command not queued", func() bool {
			d, ok, _ := ch.Get(top.CommandsQueue(), false)
			return ok && step.settle(d) == nil
		})
	}
	brokertest.Eventually(t, 5*time.Second, "3 dead letters", func() bool { return brokertest.QueueDepth(t, top.DeadQueue()) == 3 })
	for range 4 {
		send()
	}
	holder, _ := conn.Channel()
	_ = holder.Qos(1, 0, false)
	if _, err := holder.Consume(top.CommandsQueue(), "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		c, _ := conn.Channel()
		if _, err := c.Consume(top.ResultsQueue(), "", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	return top, presence(t, map[string]string{"a": `{"online":true}`, "b": `{"online":true,"fw":"2"}`, "c": `{"online":false}`})
}

// presence publishes retained presence for devices {prefix}-{name} and
// clears it at the end; it returns the pattern that matches them.
func presence(t *testing.T, states map[string]string) string {
	prefix := brokertest.ID(t, "dev")
	link := brokertest.MQTT(t, mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "pres"), CleanSession: true})
	pub := func(name, payload string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(prefix + "-" + name), Payload: []byte(payload), QoS: 1, Retained: true}); err != nil {
			t.Fatal(err)
		}
	}
	for name, p := range states {
		pub(name, p)
	}
	t.Cleanup(func() {
		for name := range states {
			pub(name, "")
		}
	})
	return prefix + "-*"
}

func TestStatusOfAKnownState(t *testing.T) {
	top, devices := knownState(t)
	g := status.New(config(t, top, devices, fakeBarista(t)), brokertest.Quiet())
	defer g.Close()
	var s status.Snapshot
	brokertest.Eventually(t, 20*time.Second, "management stats not caught up", func() bool {
		s = g.Gather(context.Background())
		q, ok := s.Queue(top.CommandsQueue())
		return ok && q.Ready == 3 && q.Unacked == 1 && s.Callers.Consumers == 2
	})
	if len(s.Errors) != 0 {
		t.Fatalf("errors: %+v", s.Errors)
	}
	q, _ := s.Queue(top.CommandsQueue())
	if q.Messages != 4 || q.Consumers != 1 || s.Baristas.Consumers != 1 || s.Baristas.Up != 1 {
		t.Errorf("commands queue %+v, baristas %+v", q, s.Baristas)
	}
	if s.Devices == nil || s.Devices.Online != 2 || s.Devices.Known != 3 {
		t.Errorf("devices %+v, want 2 online of 3", s.Devices)
	}
	if s.Dead == nil || s.Dead.Total != 3 || s.Dead.ByReason["rejected"] != 2 || s.Dead.ByReason["delivery_limit"] != 1 {
		t.Errorf("dead letters %+v", s.Dead)
	}
	if s.Breakers == nil || s.Breakers.N != 2 {
		t.Errorf("breakers %+v, want 2 open", s.Breakers)
	}
	if s.Oldest == nil || !s.Oldest.Known || s.Oldest.Age != 1500*time.Millisecond || !strings.Contains(s.Oldest.Source, "barista") {
		t.Errorf("oldest %+v, want 1.5s from the barista", s.Oldest)
	}
	// Unchanged, the dead letters are not browsed again (each browse
	// counts a delivery of every letter).
	if looks(t, top) != looks(t, top)-1 {
		t.Fatal("looking twice in a row did not count one look each")
	}
	before := looks(t, top)
	g.Gather(context.Background())
	if after := looks(t, top); after != before+1 {
		t.Errorf("a status of an unchanged dead queue browsed it: delivery count %d, then %d", before, after)
	}
	// Without barista metrics the age is estimated, or said to be unknown.
	g2 := status.New(config(t, top, devices), brokertest.Quiet())
	defer g2.Close()
	if o := g2.Gather(context.Background()).Oldest; o == nil || o.Known && !strings.Contains(o.Source, "estimate") || !o.Known && !strings.Contains(o.Source, "unknown") {
		t.Errorf("oldest without baristas: %+v", o)
	}
}

// TestStatusWithBrokersDown: each unreachable source says so and what to
// do; the barista's metrics are still read.
func TestStatusWithBrokersDown(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "down")
	cfg := config(t, top, "", fakeBarista(t), "http://127.0.0.1:1/metrics")
	cfg.ManagementURL = "http://127.0.0.1:1"
	cfg.AMQPURL = "amqp://cafe-ops:x@127.0.0.1:1/"
	cfg.MQTT.URL = "tcp://cafe-ops:x@127.0.0.1:1"
	cfg.Timeout = 2 * time.Second
	g := status.New(cfg, brokertest.Quiet())
	defer g.Close()
	s := g.Gather(context.Background())
	errs := map[string]string{}
	for _, e := range s.Errors {
		errs[e.Source] = e.Err
	}
	for source, want := range map[string]string{
		"rabbitmq management": "RabbitMQ management unreachable at 127.0.0.1:1",
		"mqtt presence":       "MQTT broker unreachable",
		"dead letters":        "RabbitMQ unreachable",
		"barista metrics":     "metrics endpoint http://127.0.0.1:1/metrics unreachable",
	} {
		if !strings.Contains(errs[source], want) || source != "barista metrics" && !strings.Contains(errs[source], "bash deploy/brokers.sh") {
			t.Errorf("%s: %q, want %q and how to start it", source, errs[source], want)
		}
	}
	if s.Breakers == nil || s.Breakers.N != 2 || s.Baristas.Up != 1 || s.Baristas.Endpoints != 2 {
		t.Errorf("the barista that answered is not shown: %+v %+v", s.Breakers, s.Baristas)
	}
}

func TestStatusRefusedLogin(t *testing.T) {
	top := brokertest.Topology(t)
	cfg := config(t, top, "")
	cfg.Password = "wrong"
	g := status.New(cfg, brokertest.Quiet())
	defer g.Close()
	s := g.Gather(context.Background())
	for _, e := range s.Errors {
		if e.Source == "rabbitmq management" && strings.Contains(e.Err, "monitoring tag") {
			return
		}
	}
	t.Fatalf("errors %+v, want the management login refused with a hint", s.Errors)
}

// looks is how often the first dead letter has been delivered (browsed)
// before this look.
func looks(t *testing.T, top contracts.Topology) int64 {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	letters, err := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 0)
	if err != nil || len(letters) != 3 {
		t.Fatalf("list: %v %v", letters, err)
	}
	n, _ := letters[0].Headers["x-delivery-count"].(int64)
	return n
}
