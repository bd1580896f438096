package records_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// BenchmarkWrite is the ledger's writes alone, without RabbitMQ: b.N
// commands' four events (accepted, sent, done, delivered) written in
// batches of size events as the ledger would, a command's events spread
// over four rounds of 16 commands (see caller/ledger's BenchmarkLedger).
// size=512 puts most of a command's events in one batch (a backlog);
// size=64 one each in four batches (a steady load). Per command it reports
// the CPU of the store's PostgreSQL backends (from /proc), batches, the
// write-ahead log written (server-wide: other sessions' writes count
// too), rows and bytes (heap, indexes and TOAST, before vacuum); B/op and allocs/op
// are the Go side's. On demand, against the test PostgreSQL:
//
//	go test -run '^$' -bench BenchmarkWrite -benchtime 4000x -benchmem ./contracts/records/
//
// pipeline is the writes as the whole pipeline hands them to the ledger
// (benchPipeline): on a server of its own, with autovacuum off as on the
// CI machines.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{512, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchWrite(b, size) })
	}
	var srv *recordstest.Server // one for every run of the sub-benchmark: it ends with BenchmarkWrite
	parent := b
	b.Run("pipeline", func(b *testing.B) {
		if srv == nil {
			srv = recordstest.NewServer(parent, "autovacuum=off")
		}
		benchPipeline(b, srv)
	})
}

func benchWrite(b *testing.B, size int) {
	db := recordstest.Schema(b)
	app := brokertest.ID(b, "writebench")
	s, err := records.Open(recordstest.Named(db, app), false, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	batches := spread(b.N, 16)
	pgStart := recordstest.BackendCPU(b, db, app)
	walStart := recordstest.WAL(b, db)
	b.ResetTimer()
	var batch []records.Event
	writes := 0
	flush := func() {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
		batch, writes = batch[:0], writes+1
	}
	for _, e := range batches {
		if batch = append(batch, e); len(batch) >= size {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	b.StopTimer()
	pg := recordstest.BackendCPU(b, db, app) - pgStart
	wal := recordstest.WAL(b, db) - walStart
	if got := recordstest.Count(b, db, "SELECT count(*) FROM cafe_commands WHERE status = 4 AND done_seq IS NOT NULL"); got != b.N {
		b.Fatalf("%d commands delivered with a result, want %d", got, b.N)
	}
	fp, err := s.Footprint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rows, bytes := fp.Commands, fp.Bytes
	per := func(v float64) float64 { return v / float64(b.N) }
	b.ReportMetric(per(float64(pg.Microseconds()))/1000, "pg-cpu-ms/cmd")
	b.ReportMetric(per(float64(writes)), "batches/cmd")
	b.ReportMetric(per(float64(wal)), "wal-bytes/cmd")
	b.ReportMetric(per(float64(rows)), "rows/cmd")
	b.ReportMetric(per(float64(bytes)), "bytes/cmd")
}

// spread is n commands' events in the order a pipeline would hand them
// over: in round k the accepted events of chunk k, the sent of chunk k-1,
// the done (with a result) of chunk k-2 and the delivered of chunk k-3.
func spread(n, chunk int) []records.Event {
	cmds := make([]string, n)
	for i := range cmds {
		cmds[i] = contracts.NewCommandID()
	}
	kinds := []contracts.EventKind{contracts.EventAccepted, contracts.EventSent, contracts.EventDone, contracts.EventDelivered}
	var out []records.Event
	for k := range (n+chunk-1)/chunk + 3 {
		for stage, kind := range kinds {
			c := k - stage
			if c < 0 || c*chunk >= n {
				continue
			}
			for i := c * chunk; i < min((c+1)*chunk, n); i++ {
				e := event(kind, cmds[i], i, time.Now())
				if kind == contracts.EventAccepted {
					e.Accepted = e.At
				}
				out = append(out, e)
			}
		}
	}
	return out
}

// Pipeline is how the whole pipeline hands a command's events to the
// ledger at about 1 000 commands/s with the 20 ms batch wait: batch k
// holds the accepted copies of the commands accepted in its 20 ms
// (pipelineCommands of them) and the later events of earlier ones, each
// command's sent, done and delivered reaching the ledger 1 to 3 batches
// after its accepted (sent 1 or 2 batches later, done in the same batch
// as sent or the next, delivered in the same as done or the next: 5–60
// ms apart, as in cafe up at 64 in flight); its result is about 200 bytes.
// So a command's row is inserted by one batch and updated by one to three
// later ones.
const (
	pipelineCommands = 10   // commands accepted per batch: about 40 events a batch
	pipelineMinute   = 3000 // batches in a minute of the pipeline: how often the ledger's janitor runs
)

// pipeline is n commands' events, batch by batch, as Pipeline describes
// (the same for every run: a fixed seed).
func pipeline(n int) [][]records.Event {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now().Add(-time.Hour)
	var batches [][]records.Event
	put := func(k int, e records.Event) {
		for len(batches) <= k {
			batches = append(batches, nil)
		}
		e.At = base.Add(time.Duration(k)*20*time.Millisecond + time.Duration(len(batches[k]))*time.Microsecond)
		batches[k] = append(batches[k], e)
	}
	pad := strings.Repeat("x", 120)
	for i := range n {
		cmd := contracts.NewCommandID()
		k := i / pipelineCommands
		sent := k + 1 + rng.IntN(2)
		done := sent + rng.IntN(2)
		delivered := done + rng.IntN(2)
		accepted := event(contracts.EventAccepted, cmd, i, base)
		accepted.Accepted = base.Add(time.Duration(k) * 20 * time.Millisecond)
		put(k, accepted)
		put(sent, event(contracts.EventSent, cmd, i, base))
		result := event(contracts.EventDone, cmd, i, base)
		result.Result = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"level":80,"state":"on","device":"lamp-1","note":"%s"}}`, i, pad)
		put(done, result)
		put(delivered, event(contracts.EventDelivered, cmd, i, base))
	}
	return batches
}

// benchPipeline writes b.N commands' events batch by batch as Pipeline
// describes, into a schema of its own on srv, running the ledger's
// janitor (Store.Tidy) every pipelineMinute batches. Per command it
// reports the CPU of the store's backend (with the janitor's, and the
// janitor's alone: tidy-cpu-ms), the
// write-ahead log (srv has no other writer) and its full-page images,
// the rows' bytes and the dead rows left; and the share of the row
// updates that were HOT (no index touched).
func benchPipeline(b *testing.B, srv *recordstest.Server) {
	ctx := context.Background()
	app := brokertest.ID(b, "pipebench")
	schema := strings.ToLower(strings.ReplaceAll(app, "-", "_"))
	recordstest.Exec(b, srv.URL(), "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	db := srv.URL() + "&search_path=" + schema
	s, err := records.Open(recordstest.Named(db, app), false, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	batches := pipeline(b.N)
	events := 0
	for _, batch := range batches {
		events += len(batch)
	}
	pgStart := recordstest.BackendCPU(b, db, app)
	walStart, fpiStart := recordstest.WAL(b, db), recordstest.Count(b, db, "SELECT wal_fpi::int FROM pg_stat_wal")
	var tidy time.Duration
	b.ResetTimer()
	for k, batch := range batches {
		if err := s.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
		if (k+1)%pipelineMinute == 0 {
			before := recordstest.BackendCPU(b, db, app)
			if _, err := s.Tidy(ctx); err != nil {
				b.Fatal(err)
			}
			tidy += recordstest.BackendCPU(b, db, app) - before
		}
	}
	b.StopTimer()
	pg := recordstest.BackendCPU(b, db, app) - pgStart
	wal := recordstest.WAL(b, db) - walStart
	fpi := recordstest.Count(b, db, "SELECT wal_fpi::int FROM pg_stat_wal") - fpiStart
	if got := recordstest.Count(b, db, "SELECT count(*) FROM cafe_commands WHERE status = 4 AND done_seq IS NOT NULL"); got != b.N {
		b.Fatalf("%d commands delivered with a result, want %d", got, b.N)
	}
	fp, err := s.Footprint(ctx)
	if err != nil {
		b.Fatal(err)
	}
	s.Close() // its backend reports its statistics as it ends
	var upd, hot, dead int
	brokertest.Eventually(b, 10*time.Second, "PostgreSQL's statistics show the inserts", func() bool {
		return recordstest.Count(b, db, "SELECT n_tup_ins::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass") >= b.N
	})
	upd = recordstest.Count(b, db, "SELECT n_tup_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
	hot = recordstest.Count(b, db, "SELECT n_tup_hot_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
	dead = recordstest.Count(b, db, "SELECT n_dead_tup::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
	per := func(v float64) float64 { return v / float64(b.N) }
	b.ReportMetric(per(float64(pg.Microseconds()))/1000, "pg-cpu-ms/cmd")
	b.ReportMetric(per(float64(tidy.Microseconds()))/1000, "tidy-cpu-ms/cmd")
	b.ReportMetric(float64(events)/float64(len(batches)), "events/batch")
	b.ReportMetric(per(float64(wal)), "wal-bytes/cmd")
	b.ReportMetric(per(float64(fpi)), "fpi/cmd")
	b.ReportMetric(per(float64(upd)), "updates/cmd")
	b.ReportMetric(100*float64(hot)/float64(max(upd, 1)), "hot-%")
	b.ReportMetric(per(float64(dead)), "dead/cmd")
	b.ReportMetric(per(float64(fp.Bytes)), "bytes/cmd")
}
