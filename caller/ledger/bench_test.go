package ledger_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller/ledger"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// BenchmarkLedger is the ledger alone, measured by figures that do not
// depend on the load of the machine: b.N commands' events (the accepted
// and done copies, and sent and delivered in batches of benchChunk, as
// baristas and callers post them) are published into a prefix of the
// benchmark's own first, a command's four events spread over four rounds
// of benchChunk commands as in a running pipeline; then the real ledger
// writes them to a schema of its own, and the benchmark times it until
// every command is delivered with its result. Per command it reports:
//
//	pg-cpu-ms   CPU of the ledger's PostgreSQL backends (utime+stime from
//	            /proc, found by their application_name)
//	ledger-cpu-ms  CPU of this process while the ledger ran (getrusage;
//	            the publishers are idle by then)
//	ledger-cpu-us/event, allocs/event  the same CPU, and the Go heap
//	            allocations meanwhile, per event written (four a command:
//	            accepted, sent, done, delivered)
//	deliveries  messages the ledger took from the events queue
//	batches     transactions it committed
//	rows, bytes what its tables hold at the end (heap, indexes and TOAST,
//	            before vacuum, as cafe bench reads them)
//	wal-bytes   what the server wrote to its write-ahead log meanwhile
//	            (server-wide: other sessions' writes count too)
//
// and, with -benchmem, the ledger's allocations per command (B/op,
// allocs/op). batch=512 is the ledger's default (a backlog: a command's
// events mostly share a batch); batch=64 splits each command's events
// over four batches, as at a steady load of about 1 000 commands/s with
// the default 20 ms wait (one insert and three updates of its row).
// Run on demand against the test brokers and PostgreSQL:
//
//	go test -run '^$' -bench BenchmarkLedger -benchtime 4000x -benchmem ./caller/ledger/
func BenchmarkLedger(b *testing.B) {
	for _, size := range []int{512, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchLedger(b, size, true) })
	}
}

// BenchmarkLedgerWithoutPostgres is BenchmarkLedger with a store that only
// counts the events it is given: the ledger's own work per event (the
// consumer, decoding, batching, acking), without the write path of
// records and pgx, which is another part's, nor waiting for PostgreSQL,
// so the ledger runs flat out as on a saturated machine. It reports
// ledger-cpu-us/event, allocs/event and deliveries/cmd, batches/cmd.
//
//	go test -run '^$' -bench BenchmarkLedgerWithoutPostgres -benchtime 4000x -benchmem ./caller/ledger/
func BenchmarkLedgerWithoutPostgres(b *testing.B) {
	for _, size := range []int{512, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchLedger(b, size, false) })
	}
}

// benchChunk is how many commands share a round, and so a batch of sent
// and of delivered events.
const benchChunk = 16

// eventsPerCommand is what publishBench posts for each command: accepted,
// sent, done and delivered.
const eventsPerCommand = 4

func benchLedger(b *testing.B, batchSize int, postgres bool) {
	top := brokertest.Topology(b)
	n := b.N
	var db, app string
	if postgres {
		db = recordstest.Schema(b)
	}
	publishBench(b, top, n)

	var store ledger.Store
	var pgStore *records.Store
	var nowhere *countingStore
	var pgStart time.Duration
	var walStart int64
	if postgres {
		app = brokertest.ID(b, "ledgerbench")
		pgStore = recordstest.Migrated(b, recordstest.Named(db, app))
		store = pgStore
		pgStart = recordstest.BackendCPU(b, db, app)
		walStart = recordstest.WAL(b, db)
	} else {
		nowhere = &countingStore{}
		store = nowhere
	}

	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ledger), Topology: top, Name: b.Name(), Passive: true}, brokertest.Quiet())
	if err != nil {
		b.Fatal(err)
	}
	src := &countingSource{EventSource: link}
	reg := prometheus.NewRegistry()
	l, err := ledger.New(ledger.Config{BatchSize: batchSize}, top, ledger.Links{Events: src, Store: store}, reg, brokertest.Quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	mallocs := mem.Mallocs
	cpuStart := processCPU()
	// The ledger's goroutines (and those they start) carry the label
	// phase=ledger, so a -cpuprofile of the benchmark can be cut to them:
	// go tool pprof -tagfocus phase=ledger.
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels("phase", "ledger")))
	stop := brokertest.Start(b, l.Run, link.Run)
	pprof.SetGoroutineLabels(context.Background())
	if postgres {
		waitWritten(b, db, n)
	} else {
		brokertest.Eventually(b, 5*time.Minute, "every event written", func() bool { return nowhere.events.Load() == int64(n*eventsPerCommand) })
	}
	brokertest.Eventually(b, time.Minute, "the events queue drained", func() bool {
		return brokertest.QueueDepth(b, top.EventsQueue()) == 0 && src.inFlight.Load() == 0
	})
	b.StopTimer()
	cpu := processCPU() - cpuStart
	runtime.ReadMemStats(&mem)
	mallocs = mem.Mallocs - mallocs
	per := func(v float64) float64 { return v / float64(n) }
	perEvent := func(v float64) float64 { return v / float64(n*eventsPerCommand) }
	b.ReportMetric(perEvent(float64(cpu.Nanoseconds()))/1000, "ledger-cpu-us/event")
	b.ReportMetric(perEvent(float64(mallocs)), "allocs/event")
	b.ReportMetric(per(float64(src.deliveries.Load())), "deliveries/cmd")
	b.ReportMetric(per(histogramCount(b, reg, "cafe_ledger_batch_events")), "batches/cmd")
	if !postgres {
		stop()
		return
	}
	pg := recordstest.BackendCPU(b, db, app) - pgStart
	wal := recordstest.WAL(b, db) - walStart
	stop()

	rows, bytes := footprint(b, pgStore)
	b.ReportMetric(per(float64(pg.Microseconds()))/1000, "pg-cpu-ms/cmd")
	b.ReportMetric(per(float64(cpu.Microseconds()))/1000, "ledger-cpu-ms/cmd")
	b.ReportMetric(per(float64(wal)), "wal-bytes/cmd")
	b.ReportMetric(per(float64(rows)), "rows/cmd")
	b.ReportMetric(per(float64(bytes)), "bytes/cmd")
}

// countingStore is a store that writes nothing and counts the events it
// is given.
type countingStore struct{ events atomic.Int64 }

func (s *countingStore) Write(_ context.Context, events []records.Event) error {
	s.events.Add(int64(len(events)))
	return nil
}

func (s *countingStore) DeleteBefore(context.Context, time.Time, int) (int64, error) { return 0, nil }

func (s *countingStore) Tidy(context.Context) ([]string, error) { return nil, nil }

// publishBench publishes n commands' events, round by round: in round k
// the accepted copies of chunk k, the sent batch of chunk k-1, the results
// of chunk k-2 and the delivered batch of chunk k-3.
func publishBench(b *testing.B, top contracts.Topology, n int) {
	cashier := brokertest.Publisher(b, top, identity.Cashier)
	barista := brokertest.Publisher(b, top, identity.Barista)
	admin := brokertest.Publisher(b, top, identity.Admin)
	metas := make([]contracts.CommandMeta, n)
	now := time.Now()
	for i := range metas {
		metas[i] = contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: fmt.Sprintf("d-%d", i%50),
			MsgID: strconv.Itoa(i + 1), Deadline: now.Add(time.Hour), AcceptedAt: now}
	}
	chunk := func(k int) []contracts.CommandMeta {
		if k < 0 || k*benchChunk >= n {
			return nil
		}
		return metas[k*benchChunk : min((k+1)*benchChunk, n)]
	}
	var failed atomic.Int32
	batcher := contracts.NewEventBatcher(admin.Post, func(lost int) { failed.Add(int32(lost)) })
	post := func(kind contracts.EventKind, ms []contracts.CommandMeta) {
		for _, m := range ms {
			if err := batcher.Add(top.EventsExchange(), "", contracts.NewEvent(kind, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, time.Now())); err != nil {
				b.Fatal(err)
			}
		}
		batcher.Flush()
	}
	publishAll := func(pub *amqplink.Publisher, exchange, key string, msgs []amqp.Publishing) {
		var wg sync.WaitGroup
		for _, m := range msgs {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := pub.Publish(ctx, exchange, key, m); err != nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
	}
	for k := range (n+benchChunk-1)/benchChunk + 3 {
		var cmds, results []amqp.Publishing
		for _, m := range chunk(k) {
			cmds = append(cmds, amqp.Publishing{MessageId: m.CommandID, Headers: m.Headers(),
				Body: fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"lamp.set","params":{"level":80},"id":%s}`, m.MsgID)})
		}
		publishAll(cashier, top.CommandsExchange(), contracts.RoutingKeyCommand, cmds)
		post(contracts.EventSent, chunk(k-1))
		for _, m := range chunk(k - 2) {
			h := contracts.ResultMeta{CommandID: m.CommandID, ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID,
				AcceptedAt: m.AcceptedAt, Outcome: contracts.OutcomeReply}.Headers()
			h[contracts.HeaderEventAt] = time.Now().UnixNano()
			results = append(results, amqp.Publishing{MessageId: m.CommandID, Headers: h,
				Body: fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%s,"result":{"level":80}}`, m.MsgID)})
		}
		publishAll(barista, top.ResultsExchange(), contracts.RoutingKeyResult, results)
		post(contracts.EventDelivered, chunk(k-3))
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d messages not published", f)
	}
}

// waitWritten polls, on one connection every 20 ms (so that waiting costs
// the process little), until n commands are delivered with their result.
func waitWritten(b *testing.B, db string, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn := recordstest.Conn(b, db)
	for {
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM cafe_commands WHERE status = 4 AND done_seq IS NOT NULL").Scan(&got); err != nil {
			b.Fatalf("waiting for %d commands to be written: %v", n, err)
		}
		if got == n {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%d of %d commands written in 5 minutes", got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countingSource counts the deliveries the ledger handles, and those in
// its batch in hand (taken, not yet flushed).
type countingSource struct {
	ledger.EventSource
	deliveries, inFlight atomic.Int64
}

func (c *countingSource) ConsumeBatches(ctx context.Context, cfg amqplink.BatchConfig, log *slog.Logger, h amqplink.BatchHandler) error {
	return c.EventSource.ConsumeBatches(ctx, cfg, log, &countingHandler{BatchHandler: h, src: c})
}

type countingHandler struct {
	amqplink.BatchHandler
	src *countingSource
	n   int64 // in the batch in hand
}

func (c *countingHandler) Add(d *amqp.Delivery) (amqplink.Verdict, int) {
	c.src.deliveries.Add(1)
	v, size := c.BatchHandler.Add(d)
	if v.Action == amqplink.Ack {
		c.n++
		c.src.inFlight.Add(1)
	}
	return v, size
}

func (c *countingHandler) Flush(ctx context.Context) error {
	defer func() { c.src.inFlight.Add(-c.n); c.n = 0 }()
	return c.BatchHandler.Flush(ctx)
}

// processCPU is this process's user and system CPU so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func histogramCount(b *testing.B, reg *prometheus.Registry, name string) float64 {
	b.Helper()
	families, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return float64(f.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// footprint is the rows and bytes of the ledger's tables, as cafe bench
// reads them (records.Store.Footprint).
func footprint(b *testing.B, store *records.Store) (rows, bytes int64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fp, err := store.Footprint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	return fp.Commands, fp.Bytes
}
