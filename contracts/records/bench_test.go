package records_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{512, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchWrite(b, size) })
	}
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
