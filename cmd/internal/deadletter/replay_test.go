package deadletter_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// testRegistry: app-1 may command lamp-*; lamp-1 and door-1 are registered.
func testRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	y := "clients:\n  - id: app-1\n    token_sha256: " + strings.Repeat("ab", 32) + "\n    devices: [\"lamp-*\"]\n" +
		brokertest.DevicesYAML("lamp-1", "door-1")
	reg, err := registry.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func getCommand(t *testing.T, top contracts.Topology) amqp.Delivery {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	defer ch.Close()
	var d amqp.Delivery
	brokertest.Eventually(t, 5*time.Second, "replayed command not in the commands queue", func() bool {
		var ok bool
		d, ok, _ = ch.Get(top.CommandsQueue(), true)
		return ok
	})
	return d
}

// TestReplayRechecks: of five dead letters only the one the cashier would
// still accept is replayed; the others are refused, say why, and stay.
func TestReplayRechecks(t *testing.T) {
	top := brokertest.Topology(t)
	letters := deadLetters(t, top,
		cmd{client: "app-1", device: "lamp-1", method: "on"},               // fine
		cmd{client: "app-gone", device: "lamp-1", method: "on"},            // client removed
		cmd{client: "app-1", device: "door-1", method: "open"},             // client lost the device
		cmd{client: "app-1", device: "lamp-9", method: "on"},               // device removed
		cmd{client: "app-1", device: "lamp-1", method: "on", deadline: -1}, // expired
	)
	wantWhy := map[string]error{letters[1]: deadletter.ErrClientGone, letters[2]: deadletter.ErrNotEntitled,
		letters[3]: deadletter.ErrDeviceGone, letters[4]: deadletter.ErrExpired}
	conn := opsConn(t)
	opts := deadletter.ReplayOptions{DryRun: true, Check: deadletter.RegistryCheck(testRegistry(t)), User: string(identity.Ops)}
	for _, dry := range []bool{true, false} {
		opts.DryRun = dry
		refused := map[string]error{}
		opts.Progress = func(o deadletter.Outcome) {
			if o.Refused != nil {
				refused[o.Letter.MessageID] = o.Refused
			}
		}
		rep, err := deadletter.Replay(context.Background(), conn, top, deadletter.Filter{}, opts)
		if err != nil || rep.Done != 1 || rep.Refused != 4 {
			t.Fatalf("dry run %v: %+v, %v; want 1 replayed, 4 refused", dry, rep, err)
		}
		for id, want := range wantWhy {
			if !errors.Is(refused[id], want) {
				t.Errorf("dry run %v: %s refused with %v, want %v", dry, id, refused[id], want)
			}
		}
		if dry {
			brokertest.Eventually(t, 5*time.Second, "a dry run changed the queues", func() bool {
				return brokertest.QueueDepth(t, top.DeadQueue()) == 5 && brokertest.QueueDepth(t, top.CommandsQueue()) == 0
			})
		}
	}
	d := getCommand(t, top)
	if d.MessageId != letters[0] || d.Headers[deadletter.HeaderReplayCount] != int64(1) || d.UserId != string(identity.Ops) {
		t.Fatalf("replayed %s, replay count %v, user-id %q; want %s, 1, cafe-ops", d.MessageId, d.Headers[deadletter.HeaderReplayCount], d.UserId, letters[0])
	}
	left, _ := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 0)
	if strings.Join(ids(left), ",") != strings.Join(letters[1:], ",") {
		t.Fatalf("left %v, want the four refused in order", ids(left))
	}
}

// TestReplayCountGrows: a letter replayed twice carries 2 the second time.
func TestReplayCountGrows(t *testing.T) {
	top := brokertest.Topology(t)
	deadLetters(t, top, lamp(1))
	conn := opsConn(t)
	opts := deadletter.ReplayOptions{User: string(identity.Ops), Extend: time.Minute}
	if rep, err := deadletter.Replay(context.Background(), conn, top, deadletter.Filter{}, opts); err != nil || rep.Done != 1 {
		t.Fatalf("first replay: %+v %v", rep, err)
	}
	admin := brokertest.Dial(t)
	defer admin.Close()
	ch, _ := admin.Channel()
	defer ch.Close()
	kill(t, ch, top, "rejected")
	brokertest.Eventually(t, 5*time.Second, "not dead again", func() bool { return brokertest.QueueDepth(t, top.DeadQueue()) == 1 })
	if rep, err := deadletter.Replay(context.Background(), conn, top, deadletter.Filter{}, opts); err != nil || rep.Done != 1 {
		t.Fatalf("second replay: %+v %v", rep, err)
	}
	if d := getCommand(t, top); d.Headers[deadletter.HeaderReplayCount] != int64(2) {
		t.Fatalf("replay count %v, want 2", d.Headers[deadletter.HeaderReplayCount])
	}
}

// TestReplayRate: at 20/s six copies take at least five intervals of 50 ms.
func TestReplayRate(t *testing.T) {
	top := brokertest.Topology(t)
	deadLetters(t, top, lamp(1), lamp(1), lamp(1), lamp(1), lamp(1), lamp(1))
	conn := opsConn(t)
	start := time.Now()
	rep, err := deadletter.Replay(context.Background(), conn, top, deadletter.Filter{}, deadletter.ReplayOptions{
		User: string(identity.Ops), Limiter: rate.NewLimiter(20, 1)})
	took := time.Since(start)
	if err != nil || rep.Done != 6 {
		t.Fatalf("%+v %v", rep, err)
	}
	// At 20/s with a burst of one, the sixth copy cannot be sent before
	// 250 ms have passed, and Replay returns only after its confirm: a
	// lower bound that no confirm's jitter can break (timing the confirms
	// could: two may come back closer than they were sent).
	if took < 250*time.Millisecond {
		t.Errorf("6 copies at 20/s replayed in %v, want at least 250ms", took)
	}
}

// TestRemovedOnlyAfterConfirm: when RabbitMQ refuses the copy (the
// commands queue is full), the dead letter stays.
func TestRemovedOnlyAfterConfirm(t *testing.T) {
	top := brokertest.TopologyWith(t, func(tp *contracts.Topology) { tp.CommandsMaxLength = 1 })
	id := deadLetters(t, top, lamp(1))[0]
	admin := brokertest.Dial(t)
	defer admin.Close()
	ch, _ := admin.Channel()
	defer ch.Close()
	// A quorum queue rejects publishes once it is over its length (it
	// takes one past it), so two fill a queue of one.
	publish(t, ch, top, lamp(1))
	publish(t, ch, top, lamp(1))
	brokertest.Eventually(t, 5*time.Second, "queue not full", func() bool { return brokertest.QueueDepth(t, top.CommandsQueue()) == 2 })

	conn := opsConn(t)
	rep, err := deadletter.Replay(context.Background(), conn, top, deadletter.Filter{}, deadletter.ReplayOptions{User: string(identity.Ops)})
	if err == nil || !strings.Contains(err.Error(), "refused") || rep.Done != 0 {
		t.Fatalf("replay into a full queue: %+v, %v; want a refusal", rep, err)
	}
	left, _ := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 0)
	if len(left) != 1 || left[0].MessageID != id {
		t.Fatalf("dead letter gone although its copy was refused: %v", ids(left))
	}
}

func TestPurge(t *testing.T) {
	top := brokertest.Topology(t)
	letters := deadLetters(t, top, lamp(1), cmd{client: "app-2", device: "lamp-1", method: "on"}, lamp(2))
	conn := opsConn(t)
	removed, err := deadletter.Purge(context.Background(), conn, top, deadletter.Filter{Client: "app-1"}, 0)
	if err != nil || len(removed) != 2 || removed[0].MessageID != letters[0] || removed[1].MessageID != letters[2] {
		t.Fatalf("purge: %v, %v", ids(removed), err)
	}
	left, _ := deadletter.List(context.Background(), conn, top, deadletter.Filter{}, 0)
	if len(left) != 1 || left[0].MessageID != letters[1] {
		t.Fatalf("left %v", ids(left))
	}
}

// TestHostileLetters: messages in the dead queue that cafe did not make —
// no x-death, headers of the wrong types, a body that is not JSON and is
// large — are listed and shown without harm, and refused by a replay.
func TestHostileLetters(t *testing.T) {
	top := brokertest.Topology(t)
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	defer ch.Close()
	big := strings.Repeat("\xff<not json>", 100_000)
	for _, m := range []amqp.Publishing{
		{MessageId: "stray", Body: []byte("x")},
		{MessageId: "typed", Headers: amqp.Table{contracts.HeaderClientID: int64(7), contracts.HeaderDeadline: "soon", "x-death": "not a list"}, Body: []byte(`[1,2`)},
		{MessageId: "big", Headers: amqp.Table{contracts.HeaderClientID: "app-1"}, Body: []byte(big)},
	} {
		if err := ch.Publish(top.DeadExchange(), "", false, false, m); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.Eventually(t, 5*time.Second, "strays not in the dead queue", func() bool { return brokertest.QueueDepth(t, top.DeadQueue()) == 3 })
	ops := opsConn(t)
	letters, err := deadletter.List(context.Background(), ops, top, deadletter.Filter{}, 0)
	if err != nil || len(letters) != 3 || letters[2].BodyBytes != len(big) || len(letters[2].Body) != deadletter.MaxBodyShown {
		t.Fatalf("list: %d letters, %v", len(letters), err)
	}
	if _, body, err := deadletter.Show(context.Background(), ops, top, "big", 0); err != nil || len(body) != len(big) {
		t.Fatalf("show big: %d bytes, %v", len(body), err)
	}
	rep, err := deadletter.Replay(context.Background(), ops, top, deadletter.Filter{},
		deadletter.ReplayOptions{User: string(identity.Ops), Check: deadletter.RegistryCheck(testRegistry(t))})
	if err != nil || rep.Done != 0 || rep.Refused != 3 {
		t.Fatalf("replay of strays: %+v, %v; want all 3 refused", rep, err)
	}
}
