package ledger_test

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller/ledger"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

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
// stand-in queue (brokertest.Feed), so only PostgreSQL is real here.
func TestHungPostgresFailsTheWriteAndRecovers(t *testing.T) {
	srv := recordstest.NewServer(t)
	store, err := records.Open(srv.URL(), false, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "hung")
	const n = 3
	next := make(chan struct{}) // lets delivery i > 0 go
	quit := make(chan struct{}) // lets every delivery go: the test is over
	feed := brokertest.NewFeed(top.EventsQueue(), n, func(i int) *amqp.Delivery {
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
