package ledger_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"cafe/caller/ledger"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// rig is a topology, a schema and the publishers that play the other roles.
type rig struct {
	t       *testing.T
	top     contracts.Topology
	db      string // the schema's URL
	cashier *amqplink.Publisher
	barista *amqplink.Publisher
	admin   *amqplink.Publisher  // posts the explicit events (standing in for barista and caller)
	metrics *prometheus.Registry // the last ledger started's
}

func newRig(t *testing.T) *rig { return newRigOn(t, recordstest.Schema(t)) }

// newRigOn is a rig writing to the database at db.
func newRigOn(t *testing.T, db string) *rig {
	top := brokertest.Topology(t)
	return &rig{t: t, top: top, db: db,
		cashier: brokertest.Publisher(t, top, identity.Cashier),
		barista: brokertest.Publisher(t, top, identity.Barista),
		admin:   brokertest.Publisher(t, top, identity.Admin)}
}

// startLedger runs a ledger writing to dbURL until the test ends.
func (r *rig) startLedger(dbURL string) (*ledger.Ledger, func()) {
	r.t.Helper()
	store := recordstest.Migrated(r.t, dbURL)
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ledger), Topology: r.top, Name: r.t.Name(), Passive: true}, brokertest.Quiet())
	if err != nil {
		r.t.Fatal(err)
	}
	r.metrics = prometheus.NewRegistry()
	l, err := ledger.New(ledger.Config{RetryEvery: 100 * time.Millisecond, Grace: time.Second}, r.top,
		ledger.Links{Events: link, Store: store}, r.metrics, brokertest.Quiet())
	if err != nil {
		r.t.Fatal(err)
	}
	return l, brokertest.Start(r.t, l.Run, link.Run)
}

// command queues a command as the cashier does and returns its meta.
func (r *rig) command(msgID string) contracts.CommandMeta {
	r.t.Helper()
	m, err := r.tryCommand(msgID)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func (r *rig) result(m contracts.CommandMeta, body string) {
	r.t.Helper()
	if err := r.tryResult(m, body); err != nil {
		r.t.Fatal(err)
	}
}

// tryCommand is command, for any goroutine: the error instead of failing.
func (r *rig) tryCommand(msgID string) (contracts.CommandMeta, error) {
	now := time.Now()
	m := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "d-1", MsgID: msgID,
		Deadline: now.Add(time.Minute), AcceptedAt: now}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"m","id":%s}`, msgID)
	return m, r.publish(r.cashier, r.top.CommandsExchange(), contracts.RoutingKeyCommand,
		amqp.Publishing{MessageId: m.CommandID, Headers: m.Headers(), Body: []byte(body)})
}

// tryResult is result, for any goroutine.
func (r *rig) tryResult(m contracts.CommandMeta, body string) error {
	h := contracts.ResultMeta{CommandID: m.CommandID, ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID,
		AcceptedAt: m.AcceptedAt, Outcome: contracts.OutcomeReply}.Headers()
	h[contracts.HeaderEventAt] = time.Now().UnixNano() // as a barista does
	return r.publish(r.barista, r.top.ResultsExchange(), contracts.RoutingKeyResult,
		amqp.Publishing{MessageId: m.CommandID, Headers: h, Body: []byte(body)})
}

func (r *rig) publish(pub *amqplink.Publisher, exchange, key string, m amqp.Publishing) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, exchange, key, m); err != nil {
		return fmt.Errorf("publish to %s: %w", exchange, err)
	}
	return nil
}

func (r *rig) event(kind contracts.EventKind, m contracts.CommandMeta) {
	r.t.Helper()
	if err := r.admin.Post(r.top.EventsExchange(), "", contracts.Event(kind, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) read(dbURL string, msgID string) *records.Command {
	r.t.Helper()
	store, err := records.Open(dbURL, true, 1)
	if err != nil {
		r.t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := store.Command(ctx, "app-1", msgID)
	if err != nil && err != records.ErrNotFound {
		r.t.Fatal(err)
	}
	return c
}

// counter is the counter name of the last ledger started, the series
// whose one label is label ("" for a counter without labels); 0 if none.
func (r *rig) counter(name, label string) float64 {
	r.t.Helper()
	families, err := r.metrics.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if l := m.GetLabel(); (label == "" && len(l) == 0) || (len(l) == 1 && l[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Every step is recorded, in order; a second result for the same command
// (a barista redelivered it after publishing) and a redelivered event change
// neither the result nor the history's single "done".
func TestEveryStepIsRecordedOnceWithOneFinalResult(t *testing.T) {
	r := newRig(t)
	r.startLedger(r.db)
	m := r.command("7")
	r.event(contracts.EventSent, m)
	first := `{"jsonrpc":"2.0","id":7,"result":{"z":1,  "a":true}}`
	r.result(m, first)
	brokertest.Eventually(t, 10*time.Second, "the first result is in the ledger", func() bool {
		c := r.read(r.db, "7")
		return c != nil && c.Result != nil
	})
	r.event(contracts.EventSent, m) // the redelivery's second send
	r.result(m, `{"jsonrpc":"2.0","id":7,"result":"second"}`)
	r.event(contracts.EventDelivered, m)

	var c *records.Command
	brokertest.Eventually(t, 10*time.Second, "the command is delivered in the ledger", func() bool {
		c = r.read(r.db, "7")
		return c != nil && c.Status == records.StatusDelivered && len(c.History) == 5
	})
	if string(c.Result) != first {
		t.Errorf("result %s, want the first result's exact bytes %s", c.Result, first)
	}
	want := []string{"queued", "sent", "done", "sent", "delivered"}
	if got := recordstest.Statuses(c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("history %v, want %v", got, want)
	}
	if c.CommandID != m.CommandID || c.DeviceID != "d-1" || c.Outcome != string(contracts.OutcomeReply) {
		t.Errorf("record %+v", c)
	}
}

// With PostgreSQL unreachable (the ledger's link to it cut, under load) the
// ledger acks nothing; once it is back, every event is written.
func TestPostgresAwayLosesNoEvent(t *testing.T) {
	r := newRig(t)
	proxy := brokertest.NewProxy(t, recordstest.Target(r.db))
	r.startLedger(recordstest.Via(r.db, proxy.Addr()))
	const n = 300
	for i := range n {
		if i == n/3 {
			proxy.Cut()
		}
		m := r.command(fmt.Sprint(i + 1))
		r.result(m, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":%d}`, i+1, i))
	}
	brokertest.Eventually(t, 10*time.Second, "the ledger tried, and failed, to write twice", func() bool {
		return r.counter("cafe_ledger_write_failures_total", "") >= 2
	})
	if got := recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_commands WHERE result IS NOT NULL"); got >= n {
		t.Fatalf("%d results written with PostgreSQL cut off", got)
	}
	proxy.Restore()
	brokertest.Eventually(t, 30*time.Second, "every result written after PostgreSQL came back", func() bool {
		return recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_commands WHERE result IS NOT NULL") == n
	})
	if got := recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_events"); got != 2*n {
		t.Errorf("%d events, want %d (accepted and done of each)", got, 2*n)
	}
	if seqs := recordstest.Count(t, r.db, "SELECT count(DISTINCT done_seq) FROM cafe_commands"); seqs != n {
		t.Errorf("%d distinct result numbers, want %d", seqs, n)
	}
}

// Sent and delivered events posted in batches (as baristas and callers
// post them) are each recorded; a batch with one bad event is dropped
// whole and counted invalid.
func TestBatchedEventsAreRecorded(t *testing.T) {
	r := newRig(t)
	r.startLedger(r.db)
	const n = 20
	b := contracts.NewEventBatcher(r.admin.Post, func(lost int) { t.Errorf("%d events not posted", lost) })
	var metas []contracts.CommandMeta
	for i := range n {
		m := r.command(fmt.Sprint(i + 1))
		metas = append(metas, m)
		if err := b.Add(r.top.EventsExchange(), "", contracts.NewEvent(contracts.EventSent, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	b.Flush()
	for _, m := range metas {
		r.result(m, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":1}`, m.MsgID))
		if err := b.Add(r.top.EventsExchange(), "", contracts.NewEvent(contracts.EventDelivered, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	b.Flush()
	bad := []byte(`[{"kind":"sent","id":"aaaa","command_id":"` + metas[0].CommandID + `","client_id":"app-1","device_id":"d-1","at":1},` +
		`{"kind":"exploded","id":"bbbb","command_id":"` + metas[1].CommandID + `","client_id":"app-1","device_id":"d-1","at":1}]`)
	if err := r.admin.Post(r.top.EventsExchange(), "", amqp.Publishing{MessageId: metas[0].CommandID, Headers: amqp.Table{contracts.HeaderEvent: contracts.EventBatch}, Body: bad}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 10*time.Second, "every command delivered in the ledger", func() bool {
		return recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_commands WHERE status = $1", records.StatusDelivered) == n
	})
	for _, m := range metas[:2] {
		if got := fmt.Sprint(recordstest.Statuses(r.read(r.db, m.MsgID))); got != "[queued sent done delivered]" {
			t.Errorf("command %s: history %s, want queued sent done delivered (and nothing of the bad batch)", m.MsgID, got)
		}
	}
	brokertest.Eventually(t, 10*time.Second, "the bad batch counted invalid", func() bool { return r.counter("cafe_ledger_events_total", "invalid") == 1 })
}

// load publishes commands and each one's result, as the cashier and a
// barista do, numbered from 1, from workers publishing one after the
// other, until end.
type load struct {
	next atomic.Int64 // the last number taken
	n    atomic.Int64 // pairs published (confirmed by RabbitMQ)
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	err  error
}

func (r *rig) startLoad(workers int) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := l.next.Add(1)
				m, err := r.tryCommand(fmt.Sprint(i))
				if err == nil {
					err = r.tryResult(m, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":%d}`, i, i))
				}
				if err != nil {
					l.mu.Lock()
					l.err = cmp.Or(l.err, err)
					l.mu.Unlock()
					return
				}
				l.n.Add(1)
			}
		})
	}
	r.t.Cleanup(l.halt)
	return l
}

func (l *load) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// end stops the load and returns how many pairs it published.
func (l *load) end(t *testing.T) int {
	t.Helper()
	l.halt()
	if l.err != nil {
		t.Fatalf("the load stopped: %v", l.err)
	}
	if n, taken := l.n.Load(), l.next.Load(); n != taken {
		t.Fatalf("%d pairs published of %d begun", n, taken)
	}
	return int(l.n.Load())
}

// PostgreSQL really stopped (fast: its sessions ended with FATAL 57P01;
// immediate: killed, recovered from its WAL at start) and started again,
// under load, on a server of the test's own: the ledger, never restarted,
// writes every event once, and a reader opened before the stop (the
// cashier's) reads again without being reopened.
func TestPostgresStoppedAndRestartedLosesNoEvent(t *testing.T) {
	srv := recordstest.NewServer(t)
	r := newRigOn(t, srv.URL())
	l, _ := r.startLedger(r.db)
	reader, err := records.Open(r.db, true, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reader.Close)
	read := func(msgID string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := reader.Command(ctx, "app-1", msgID)
		return err
	}
	results := func() int {
		return recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_commands WHERE result IS NOT NULL")
	}
	ld := r.startLoad(4)
	for _, mode := range []string{"fast", "immediate"} {
		written := results()
		brokertest.Eventually(t, 10*time.Second, "the ledger writes under load", func() bool { return results() >= written+50 })
		if err := read("1"); err != nil {
			t.Fatalf("read before the %s stop: %v", mode, err)
		}
		failures := r.counter("cafe_ledger_write_failures_total", "")
		published := ld.n.Load()
		down := time.Now()
		srv.Stop(mode)
		brokertest.Eventually(t, 10*time.Second, "the ledger tried, and failed, to write twice", func() bool {
			return r.counter("cafe_ledger_write_failures_total", "") >= failures+2 && !l.Healthy()
		})
		if err := read("1"); err == nil {
			t.Fatalf("read with PostgreSQL stopped (%s) succeeded", mode)
		}
		brokertest.Eventually(t, 10*time.Second, "the load goes on while PostgreSQL is down", func() bool { return ld.n.Load() >= published+600 })
		srv.Start()
		outage := time.Since(down)
		up := time.Now()
		if err := read("1"); err != nil {
			t.Errorf("first read after the %s restart: %v", mode, err)
		}
		target := int(ld.n.Load())
		brokertest.Eventually(t, 20*time.Second, "the ledger caught up after the restart", func() bool { return results() >= target })
		t.Logf("%s stop: down %v (%d pairs published meanwhile), caught up %d results %v after the start",
			mode, outage.Round(time.Millisecond), target-int(published), target, time.Since(up).Round(time.Millisecond))
	}
	n := ld.end(t)
	brokertest.Eventually(t, 20*time.Second, "every result written", func() bool { return results() == n })
	if got := recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_commands"); got != n {
		t.Errorf("%d commands, want %d", got, n)
	}
	if got := recordstest.Count(t, r.db, "SELECT count(*) FROM cafe_events"); got != 2*n {
		t.Errorf("%d events, want %d (accepted and done of each)", got, 2*n)
	}
	if seqs := recordstest.Count(t, r.db, "SELECT count(DISTINCT done_seq) FROM cafe_commands"); seqs != n {
		t.Errorf("%d distinct result numbers, want %d", seqs, n)
	}
	if !l.Healthy() {
		t.Error("the ledger is not healthy after catching up")
	}
	t.Logf("%d commands, %d events, %d write failures", n, 2*n, int(r.counter("cafe_ledger_write_failures_total", "")))
}

// PostgreSQL hung (its processes stopped, SIGSTOP: connections stay open,
// nothing answers): the write in flight is given up after the write
// timeout, counted, and the ledger reports itself unhealthy, instead of
// waiting, healthy in name, for TCP to give up; once the server goes on,
// the batch is written and the next ones too. The events come from a
// stand-in queue (batchFeed), so only PostgreSQL is real here.
func TestHungPostgresFailsTheWriteAndRecovers(t *testing.T) {
	srv := recordstest.NewServer(t)
	store := recordstest.Migrated(t, srv.URL())
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "hung")
	const n = 3
	next := make(chan struct{}) // lets delivery i > 0 go
	quit := make(chan struct{}) // lets every delivery go: the test is over
	feed := newBatchFeed(top.EventsQueue(), n, func(i int) *amqp.Delivery {
		if i > 0 {
			select {
			case <-next:
			case <-quit:
			}
		}
		now := time.Now()
		m := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "d-1", MsgID: fmt.Sprint(i + 1),
			Deadline: now.Add(time.Minute), AcceptedAt: now}
		return &amqp.Delivery{Exchange: top.CommandsExchange(), MessageId: m.CommandID, Headers: m.Headers(), DeliveryTag: uint64(i + 1)}
	})
	r := &rig{t: t, metrics: prometheus.NewRegistry()}
	l, err := ledger.New(ledger.Config{RetryEvery: 100 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, BatchWait: time.Millisecond},
		top, ledger.Links{Events: feed, Store: store}, r.metrics, brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, l.Run)
	t.Cleanup(func() { // before the ledger stops: a write hung on the server, or the feed, would hold it
		srv.Thaw()
		close(quit)
	})
	commands := func() int { return recordstest.Count(t, srv.URL(), "SELECT count(*) FROM cafe_commands") }
	brokertest.Eventually(t, 10*time.Second, "the first command written", func() bool { return commands() == 1 })

	srv.Freeze()
	hung := time.Now()
	next <- struct{}{}
	brokertest.Eventually(t, 10*time.Second, "the write to the hung server given up and counted", func() bool {
		return r.counter("cafe_ledger_write_failures_total", "") >= 2 && !l.Healthy()
	})
	failedAfter := time.Since(hung)
	srv.Thaw()
	thawed := time.Now()
	brokertest.Eventually(t, 10*time.Second, "the held command written once the server goes on", func() bool { return commands() == 2 })
	t.Logf("written %v after the thaw", time.Since(thawed).Round(time.Millisecond))
	next <- struct{}{}
	brokertest.Eventually(t, 10*time.Second, "the next command written", func() bool { return commands() == n && l.Healthy() })
	<-feed.Done
	for i, v := range feed.Verdicts() {
		if v.Action != amqplink.Ack {
			t.Errorf("delivery %d: verdict %+v, want done", i, v)
		}
	}
	t.Logf("two writes to the hung server failed %v after it hung (write timeout 300ms)", failedAfter.Round(time.Millisecond))
}

// The cashier's refusals (commands exchange, key refused; batched as it
// posts them) make their commands refused, and free their ids; a refusal
// from a user that may not publish commands, another kind of event on the
// refusals' route (alone, or in a batch with a refusal), or a refusal on
// the events exchange is dropped and counted invalid.
func TestRefusalsAreRecordedFromCommandPublishersOnly(t *testing.T) {
	r := newRig(t)
	r.startLedger(r.db)
	refusal := func(m contracts.CommandMeta) amqp.Publishing {
		return contracts.Event(contracts.EventRefused, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())
	}
	b := contracts.NewEventBatcher(r.cashier.Post, func(lost int) { t.Errorf("%d refusals not posted", lost) })
	var refused []contracts.CommandMeta
	for i := range 5 {
		m := r.command(fmt.Sprint(i + 1))
		refused = append(refused, m)
		if err := b.Add(r.top.CommandsExchange(), contracts.RoutingKeyRefused, contracts.NewEvent(contracts.EventRefused, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	b.Flush()
	lone := r.command("6")
	if err := r.cashier.Post(r.top.CommandsExchange(), contracts.RoutingKeyRefused, refusal(lone)); err != nil {
		t.Fatal(err)
	}
	refused = append(refused, lone)

	forged := r.command("7") // by cafe-admin, not a command publisher
	if err := r.admin.Post(r.top.CommandsExchange(), contracts.RoutingKeyRefused, refusal(forged)); err != nil {
		t.Fatal(err)
	}
	sent := contracts.Event(contracts.EventSent, forged.CommandID, forged.ClientID, forged.DeviceID, forged.MsgID, time.Now())
	if err := r.cashier.Post(r.top.CommandsExchange(), contracts.RoutingKeyRefused, sent); err != nil {
		t.Fatal(err)
	}
	if err := r.admin.Post(r.top.EventsExchange(), "", refusal(forged)); err != nil {
		t.Fatal(err)
	}
	mixed := []byte(`[{"kind":"refused","id":"aaaa","command_id":"` + forged.CommandID + `","client_id":"app-1","device_id":"d-1","msg_id":"7","at":1},` +
		`{"kind":"delivered","id":"bbbb","command_id":"` + forged.CommandID + `","client_id":"app-1","device_id":"d-1","msg_id":"7","at":1}]`)
	if err := r.cashier.Post(r.top.CommandsExchange(), contracts.RoutingKeyRefused, amqp.Publishing{MessageId: forged.CommandID,
		Headers: amqp.Table{contracts.HeaderEvent: contracts.EventBatch}, Body: mixed}); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 10*time.Second, "the refusals recorded", func() bool {
		for _, m := range refused {
			if c := r.read(r.db, m.MsgID); c == nil || c.Status != records.StatusRefused {
				return false
			}
		}
		return true
	})
	brokertest.Eventually(t, 10*time.Second, "the four bad refusals counted invalid", func() bool { return r.counter("cafe_ledger_events_total", "invalid") == 4 })
	if c := r.read(r.db, "7"); c == nil || c.Status != records.StatusQueued || fmt.Sprint(recordstest.Statuses(c)) != "[queued]" {
		t.Errorf("the command of the bad refusals: %+v, want queued and nothing else", c)
	}
	if got := r.counter("cafe_ledger_events_total", string(contracts.EventRefused)); got != float64(len(refused)) {
		t.Errorf("%v refusals counted, want %d", got, len(refused))
	}
}

// batchFeed is brokertest.Feed for a batch consumer: n deliveries made by
// next, each flushed as a batch of its own (as a consumer does when none
// follows within the batch wait); the Feed keeps each one's verdict: Add's,
// or, for one that joined the batch, hand back if Flush failed.
type batchFeed struct{ *brokertest.Feed }

func newBatchFeed(queue string, n int, next func(i int) *amqp.Delivery) batchFeed {
	return batchFeed{brokertest.NewFeed(queue, n, next)}
}

func (f batchFeed) ConsumeBatches(ctx context.Context, cfg amqplink.BatchConfig, log *slog.Logger, h amqplink.BatchHandler) error {
	return f.Consume(ctx, amqplink.ConsumerConfig{Queue: cfg.Queue}, log, func(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
		v, _ := h.Add(d)
		if v.Action == amqplink.Ack {
			if err := h.Flush(ctx); err != nil {
				return amqplink.GiveBack(err.Error())
			}
		}
		return v
	})
}
