package deadletter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cmd is one command to dead-letter.
type cmd struct {
	client, device, method string
	reason                 string        // "rejected" (default) or "delivery_limit"
	deadline               time.Duration // from now; 0: a minute
}

// deadLetters puts the commands through the commands queue of top (which
// it declares) and makes RabbitMQ dead-letter each for its reason. It
// returns their ids, in order.
func deadLetters(t *testing.T, top contracts.Topology, cmds ...cmd) []string {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := amqplink.Declare(ch, top); err != nil {
		t.Fatal(err)
	}
	before := brokertest.QueueDepth(t, top.DeadQueue())
	var ids []string
	for _, c := range cmds {
		ids = append(ids, publish(t, ch, top, c))
		kill(t, ch, top, c.reason)
	}
	brokertest.Eventually(t, 5*time.Second, "commands not dead-lettered", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == before+len(cmds)
	})
	return ids
}

func publish(t *testing.T, ch *amqp.Channel, top contracts.Topology, c cmd) string {
	t.Helper()
	if c.deadline == 0 {
		c.deadline = time.Minute
	}
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: c.client, DeviceID: c.device,
		MsgID: "1", Deadline: time.Now().Add(c.deadline), AcceptedAt: time.Now().Add(-time.Second)}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":1}`, c.method)
	if err := ch.Publish(top.CommandsExchange(), contracts.RoutingKeyCommand, false, false,
		amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body)}); err != nil {
		t.Fatal(err)
	}
	return meta.CommandID
}

// kill takes the command just published and settles it so it dies for reason.
func kill(t *testing.T, ch *amqp.Channel, top contracts.Topology, reason string) {
	t.Helper()
	for {
		var d amqp.Delivery
		brokertest.Eventually(t, 5*time.Second, "command not in the queue", func() bool {
			var ok bool
			d, ok, _ = ch.Get(top.CommandsQueue(), false)
			return ok
		})
		if reason != "delivery_limit" {
			if err := d.Reject(false); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := d.Nack(false, true); err != nil {
			t.Fatal(err)
		}
		if c, _ := d.Headers["x-delivery-count"].(int64); c >= int64(top.DeliveryLimit) {
			return
		}
	}
}

// opsConn is a connection as cafe-ops, the identity `cafe dead` uses.
func opsConn(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(brokertest.AMQPURLAs(identity.Ops))
	if err != nil {
		t.Fatalf("connect as cafe-ops: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func ids(letters []deadletter.Letter) []string {
	var out []string
	for _, l := range letters {
		out = append(out, l.MessageID)
	}
	return out
}

func lamp(n int) cmd { return cmd{client: "app-1", device: fmt.Sprintf("lamp-%d", n), method: "on"} }

// TestBrowseLosesNothingKeepsOrder lists the dead queue 25 times (more
// than RabbitMQ 4's default delivery limit of 20): every letter is still
// there, in its order.
func TestBrowseLosesNothingKeepsOrder(t *testing.T) {
	top := brokertest.Topology(t)
	want := deadLetters(t, top, lamp(1), lamp(2), lamp(3), lamp(4))
	conn := opsConn(t)
	for i := range 25 {
		if i%2 == 1 { // a partial look (--limit, or stopping at a match) keeps the order too
			if first, err := deadletter.List(context.Background(), conn, top, deadletter.Filter{Limit: 1}, 0); err != nil || len(first) != 1 || first[0].MessageID != want[0] {
				t.Fatalf("look %d at the first letter: %v %v", i, ids(first), err)
			}
		}
		got, err := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(ids(got), ",") != strings.Join(want, ",") {
			t.Fatalf("browse %d: got %v, want %v", i, ids(got), want)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "dead queue not back to 4 after browsing", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 4
	})
}

func TestListFilters(t *testing.T) {
	top := brokertest.TopologyWith(t, func(tp *contracts.Topology) { tp.DeliveryLimit = 1 })
	old := deadLetters(t, top,
		cmd{client: "app-1", device: "lamp-1", method: "on"},
		cmd{client: "app-2", device: "door-7", method: "open", reason: "delivery_limit"})
	time.Sleep(2200 * time.Millisecond) // x-death times are whole seconds
	recent := deadLetters(t, top,
		cmd{client: "app-1", device: "lamp-2", method: "off"},
		cmd{client: "app-2", device: "lamp-3", method: "on"})
	conn := opsConn(t)
	for _, tc := range []struct {
		name string
		f    deadletter.Filter
		want []string
	}{
		{"all", deadletter.Filter{}, append(append([]string{}, old...), recent...)},
		{"id", deadletter.Filter{IDs: []string{recent[1], old[0]}}, []string{old[0], recent[1]}},
		{"reason", deadletter.Filter{Reason: "delivery_limit"}, old[1:2]},
		{"client", deadletter.Filter{Client: "app-2"}, []string{old[1], recent[1]}},
		{"device pattern", deadletter.Filter{Device: "lamp-*"}, []string{old[0], recent[0], recent[1]}},
		{"method", deadletter.Filter{Method: "on"}, []string{old[0], recent[1]}},
		{"older than", deadletter.Filter{OlderThan: 1500 * time.Millisecond}, old},
		{"newer than", deadletter.Filter{NewerThan: 1500 * time.Millisecond}, recent},
		{"limit", deadletter.Filter{Limit: 3}, []string{old[0], old[1], recent[0]}},
		{"and", deadletter.Filter{Client: "app-1", Method: "off"}, recent[:1]},
		{"none", deadletter.Filter{Client: "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := deadletter.List(context.Background(), conn, top, tc.f, 0)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(ids(got), ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestShow(t *testing.T) {
	top := brokertest.Topology(t)
	id := deadLetters(t, top, lamp(1), lamp(2))[1]
	conn := opsConn(t)
	l, body, err := deadletter.Show(context.Background(), conn, top, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if l.MessageID != id || l.DeviceID != "lamp-2" || l.Method != "on" || l.Reason != "rejected" ||
		len(l.Deaths) != 1 || l.Deaths[0].Queue != top.CommandsQueue() || !strings.HasPrefix(fmt.Sprint(l.Headers[contracts.HeaderMeta]), "app-1 lamp-2 ") ||
		!strings.Contains(string(body), `"method":"on"`) {
		t.Fatalf("show: %+v %s", l, body)
	}
	if _, _, err := deadletter.Show(context.Background(), conn, top, "no-such-id", 0); !errors.Is(err, deadletter.ErrNotFound) {
		t.Fatalf("show of an unknown id: %v, want ErrNotFound", err)
	}
	brokertest.Eventually(t, 5*time.Second, "show removed letters", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 2
	})
}

func TestMissingQueueSaysWhy(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "never-used")
	conn := brokertest.Dial(t)
	defer conn.Close()
	_, err := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 10)
	if err == nil || !strings.Contains(err.Error(), "CAFE_AMQP_PREFIX") {
		t.Fatalf("got %v, want a hint about the prefix", err)
	}
}
