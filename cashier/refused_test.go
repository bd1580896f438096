package cashier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/caller/ledger"
	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// runLedger runs a ledger on top writing to dbURL, as cafe-ledger, until
// the test ends.
func runLedger(t *testing.T, top contracts.Topology, dbURL string) {
	t.Helper()
	store, err := records.Open(dbURL, false, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ledger), Topology: top, Name: t.Name(), Passive: true}, brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.New(ledger.Config{Grace: time.Second}, top, ledger.Links{Events: link, Store: store}, prometheus.NewRegistry(), brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, l.Run, link.Run)
}

// record is GET /v1/commands/{id} as the app reads it.
type record struct {
	CommandID string          `json:"command_id"`
	Status    string          `json:"status"`
	DoneAt    *time.Time      `json:"done_at"`
	Result    json.RawMessage `json:"result"`
	History   []records.Step  `json:"history"`
}

func (l *live) record(t *testing.T, id string) (int, record) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, l.base+"/v1/commands/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tokenApp1)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r record
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
	}
	return res.StatusCode, r
}

// The ghost of a refused command: the commands queue is full, so RabbitMQ
// nacks the command and the cashier answers 503, but the events queue
// (drop-head) took its copy and the ledger recorded it. The cashier's
// refusal makes that record refused, not pending: once the queue has
// room, the app's retry with the same id is accepted (before, it got 409
// for as long as the record was kept), and the id's record is the new
// command. The cashier, the ledger and both brokers are real.
func TestLiveRefusedCommandFreesItsID(t *testing.T) {
	top := brokertest.TopologyWith(t, func(top *contracts.Topology) { top.CommandsMaxLength = 1 })
	db := recordstest.Schema(t)
	runLedger(t, top, db)
	reader, err := records.Open(db, true, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	l := startLiveWith(t, brokertest.AMQPURLAs(identity.Cashier), top, func(s *cashier.Server, posts *amqplink.Publisher) {
		s.UseRecords(reader)
		s.UseRefusals(posts)
	})
	l.waitReady(t)

	// A quorum queue applies its limit a little late: send until one is
	// refused (the queue holds no more than it was sent, nothing consumes).
	id, accepted := "", 0
	for i := range 10 {
		id = fmt.Sprintf("ghost-%d", i)
		status, _, out := l.post(t, "lamp-1", `{"jsonrpc":"2.0","method":"on","id":"`+id+`"}`)
		if status == 503 {
			break
		}
		if status != 202 {
			t.Fatalf("%s: %d %s", id, status, out)
		}
		accepted++
	}
	if accepted == 10 {
		t.Fatal("10 commands accepted into a queue of max length 1")
	}
	ghost := `{"jsonrpc":"2.0","method":"on","id":"` + id + `"}`
	var refused record
	brokertest.Eventually(t, 10*time.Second, "the refused command is recorded as refused", func() bool {
		code, r := l.record(t, id)
		refused = r
		return code == 200 && r.Status == "refused"
	})
	if len(refused.History) != 1 || refused.History[0].Status != "refused" || refused.Result != nil || refused.DoneAt != nil {
		t.Errorf("the refused command's record: %+v, want a refused step alone, no result", refused)
	}
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != accepted {
		t.Fatalf("commands queue holds %d, want the %d accepted commands only", n, accepted)
	}

	purge(t, top.CommandsQueue()) // as if a barista took it
	status, _, out := l.post(t, "lamp-1", ghost)
	if status != 202 {
		t.Fatalf("the refused id sent again once the queue had room: %d %s, want 202", status, out)
	}
	brokertest.Eventually(t, 10*time.Second, "the id's record is the new command", func() bool {
		code, r := l.record(t, id)
		return code == 200 && r.Status == "queued" && r.CommandID != refused.CommandID
	})
	// And the new command holds its id, as any command pending does.
	if status, _, out := l.post(t, "lamp-1", ghost); status != 409 {
		t.Fatalf("the id sent a third time while its command is pending: %d %s, want 409", status, out)
	}
}

func purge(t *testing.T, queue string) {
	t.Helper()
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueuePurge(queue, false); err != nil {
		t.Fatal(err)
	}
}
