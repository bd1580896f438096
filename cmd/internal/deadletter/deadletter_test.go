package deadletter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// deadLetters puts n commands through the commands queue and rejects them,
// so RabbitMQ dead-letters them with reason "rejected". It returns their ids.
func deadLetters(t *testing.T, conn *amqp.Connection, top contracts.Topology, n int) []string {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if err := amqplink.Declare(ch, top); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
			MsgID: "1", Deadline: time.Now().Add(-time.Minute), AcceptedAt: time.Now().Add(-2 * time.Minute)}
		body := `{"jsonrpc":"2.0","method":"m","id":1,"n":` + string(rune('0'+i)) + `}`
		if err := ch.Publish(top.CommandsExchange(), contracts.RoutingKeyCommand, false, false,
			amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, meta.CommandID)
	}
	for range n {
		var d amqp.Delivery
		brokertest.Eventually(t, 5*time.Second, "command not in the queue", func() bool {
			var ok bool
			d, ok, _ = ch.Get(top.CommandsQueue(), false)
			return ok
		})
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "commands not dead-lettered", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == n
	})
	return ids
}

func TestListShowsWithoutRemoving(t *testing.T) {
	top := brokertest.Topology(t)
	conn := brokertest.Dial(t)
	defer conn.Close()
	ids := deadLetters(t, conn, top, 3)

	letters, err := deadletter.List(context.Background(), conn, top, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 2 {
		t.Fatalf("listed %d, want the limit of 2", len(letters))
	}
	l := letters[0]
	if l.MessageID != ids[0] || l.Reason != "rejected" || l.Queue != top.CommandsQueue() || l.Exchange != top.CommandsExchange() ||
		l.RoutingKey != contracts.RoutingKeyCommand || l.ClientID != "app-1" || l.DeviceID != "lamp-1" || l.Count != 1 || l.DiedAt.IsZero() {
		t.Fatalf("letter %+v", l)
	}
	brokertest.Eventually(t, 5*time.Second, "listing removed dead letters", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 3
	})
	again, _ := deadletter.List(context.Background(), conn, top, 10)
	if len(again) != 3 || again[0].MessageID != ids[0] || again[2].MessageID != ids[2] {
		t.Fatalf("after listing, the order changed or letters vanished: %+v", again)
	}
}

func TestReplayChosenLettersWithNewDeadline(t *testing.T) {
	top := brokertest.Topology(t)
	conn := brokertest.Dial(t)
	defer conn.Close()
	ids := deadLetters(t, conn, top, 3)

	var replayedIDs []string
	n, err := deadletter.Replay(context.Background(), conn, top,
		deadletter.Selector{IDs: map[string]bool{ids[1]: true}},
		deadletter.ReplayOptions{Limit: 100, Extend: time.Minute, Progress: func(l deadletter.Letter, replayed bool, err error) {
			if replayed {
				replayedIDs = append(replayedIDs, l.MessageID)
			}
		}})
	if err != nil || n != 1 || len(replayedIDs) != 1 || replayedIDs[0] != ids[1] {
		t.Fatalf("replayed %d (%v), err %v", n, replayedIDs, err)
	}
	ch, _ := conn.Channel()
	defer ch.Close()
	var d amqp.Delivery
	brokertest.Eventually(t, 5*time.Second, "replayed command not back in the commands queue", func() bool {
		var ok bool
		d, ok, _ = ch.Get(top.CommandsQueue(), true)
		return ok
	})
	if d.MessageId != ids[1] {
		t.Fatalf("replayed %s, want %s", d.MessageId, ids[1])
	}
	meta, err := contracts.ParseCommandMeta(d.MessageId, d.Headers)
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(meta.Deadline); until < 50*time.Second || until > time.Minute {
		t.Fatalf("new deadline in %v, want about a minute", until)
	}
	if _, has := d.Headers["x-death"]; has {
		t.Fatal("replayed command still carries x-death")
	}
	brokertest.Eventually(t, 5*time.Second, "dead queue should keep the two others", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 2
	})
	left, _ := deadletter.List(context.Background(), conn, top, 10)
	if len(left) != 2 || left[0].MessageID != ids[0] || left[1].MessageID != ids[2] {
		t.Fatalf("left %+v", left)
	}
}

func TestReplayByReasonAndUnroutable(t *testing.T) {
	top := brokertest.Topology(t)
	conn := brokertest.Dial(t)
	defer conn.Close()
	deadLetters(t, conn, top, 2)
	// A message in the dead queue that never died anywhere: nothing to replay it to.
	ch, _ := conn.Channel()
	defer ch.Close()
	if err := ch.Publish(top.DeadExchange(), "", false, false, amqp.Publishing{MessageId: "stray", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 5*time.Second, "stray not in the dead queue", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 3
	})

	if n, err := deadletter.Replay(context.Background(), conn, top, deadletter.Selector{Reason: "delivery_limit"}, deadletter.ReplayOptions{Limit: 10}); err != nil || n != 0 {
		t.Fatalf("replay by another reason: %d, %v", n, err)
	}
	var noRoute int
	n, err := deadletter.Replay(context.Background(), conn, top, deadletter.Selector{}, deadletter.ReplayOptions{Limit: 10,
		Progress: func(_ deadletter.Letter, _ bool, err error) {
			if errors.Is(err, deadletter.ErrNoRoute) {
				noRoute++
			}
		}})
	if err != nil || n != 2 || noRoute != 1 {
		t.Fatalf("replayed %d (err %v), %d without a route; want 2 and 1", n, err, noRoute)
	}
	brokertest.Eventually(t, 5*time.Second, "replayed commands not in the commands queue", func() bool {
		return brokertest.QueueDepth(t, top.CommandsQueue()) == 2 && brokertest.QueueDepth(t, top.DeadQueue()) == 1
	})
}

func TestMissingQueueSaysWhy(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "never-used")
	conn := brokertest.Dial(t)
	defer conn.Close()
	_, err := deadletter.List(context.Background(), conn, top, 10)
	if err == nil || !strings.Contains(err.Error(), "CAFE_AMQP_PREFIX") {
		t.Fatalf("got %v, want a hint about the prefix", err)
	}
}
