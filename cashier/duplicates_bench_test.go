package cashier_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// BenchmarkDuplicateCheck is what the duplicate-id check costs PostgreSQL:
// b.N submissions of one command each (every id new: the check clears
// it), sent through the cashier's handler by submitters goroutines at
// once, against a PostgreSQL server of the benchmark's own whose ledger
// holds 40 000 commands (20 000 ids, each done for one app and pending
// for the other). Per submission it reports the CPU of the
// cashier's PostgreSQL backends (utime+stime from /proc, found by their
// application_name) and the transactions the server counted
// (pg_stat_database, read once the pool is closed and its backends have
// flushed their counts; the warm-up's eight and the readings' own may
// count too): one a
// query; and the share of submissions not checked (skipped, or the
// breaker open: with the cashier's 50 ms budget a loaded machine skips
// many, which is why benchTuning raises it). On demand (the machine's
// other load moves ns/op, not the CPU a lookup costs PostgreSQL):
//
//	go test -run '^$' -bench BenchmarkDuplicateCheck -benchtime 8000x ./cashier/
func BenchmarkDuplicateCheck(b *testing.B) {
	srv := recordstest.NewServer(b)
	db := srv.URL()
	w := recordstest.Migrated(b, db)
	ledgerOf(b, w, 20000)
	for _, submitters := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("submitters=%d", submitters), func(b *testing.B) {
			app := brokertest.ID(b, "dupbench")
			r, err := records.Open(recordstest.Named(db, app), true, 8) // as the cashier opens it
			if err != nil {
				b.Fatal(err)
			}
			s := benchServer(b)
			s.UseRecords(r)
			benchTuning(b, s)
			h := s.Handler()
			var seq atomic.Int64
			submit := func(b *testing.B, n int) {
				var wg sync.WaitGroup
				var left atomic.Int64
				left.Store(int64(n))
				for range submitters {
					wg.Go(func() {
						for left.Add(-1) >= 0 {
							body := `{"jsonrpc":"2.0","method":"echo","id":"b.` + strconv.FormatInt(seq.Add(1), 10) + `"}`
							req := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", strings.NewReader(body))
							req.Header.Set("Authorization", "Bearer "+benchToken)
							rec := httptest.NewRecorder()
							h.ServeHTTP(rec, req)
							if rec.Code != http.StatusAccepted {
								b.Errorf("status %d: %s", rec.Code, rec.Body)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			// The pool's connections opened first: a new connection can
			// take longer than the check's budget, and three such lookups
			// would open the breaker.
			var opened sync.WaitGroup
			for range 8 {
				opened.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if _, err := r.Pending(ctx, "app-1", []string{"warm-up"}); err != nil {
						b.Error(err)
					}
				})
			}
			opened.Wait()
			checked0 := cleared(b, s)
			xacts := func() int {
				return recordstest.Count(b, db, "SELECT (xact_commit + xact_rollback)::int FROM pg_stat_database WHERE datname = current_database()")
			}
			x0 := xacts()
			cpu0 := recordstest.BackendCPU(b, db, app)
			b.ResetTimer()
			submit(b, b.N)
			b.StopTimer()
			cpu := recordstest.BackendCPU(b, db, app) - cpu0
			r.Close()
			for deadline := time.Now().Add(10 * time.Second); recordstest.Count(b, db, "SELECT count(*)::int FROM pg_stat_activity WHERE application_name = $1", app) > 0; {
				if time.Now().After(deadline) {
					b.Fatal("the pool's backends did not end within 10 s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			// Count's own connections add one transaction each: the
			// readings of xacts, BackendCPU's (two) and the polls above.
			queries := xacts() - x0
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "pg-cpu-ms/lookup")
			b.ReportMetric(float64(queries)/float64(b.N), "queries/lookup")
			b.ReportMetric(float64(b.N-(cleared(b, s)-checked0))/float64(b.N), "unchecked/lookup")
		})
	}
}

// ledgerOf writes n done commands of app-1 (ids l.0 …) into w, and as
// many of app-2 with the same ids, pending.
func ledgerOf(b *testing.B, w *records.Store, n int) {
	b.Helper()
	const batch = 2000
	for lo := 0; lo < n; lo += batch {
		var evs []records.Event
		for i := lo; i < min(lo+batch, n); i++ {
			now := time.Now()
			for _, client := range []string{"app-1", "app-2"} {
				cmd := contracts.NewCommandID()
				acc := records.Event{ID: "accepted:" + cmd, Kind: contracts.EventAccepted, CommandID: cmd, ClientID: client,
					DeviceID: "lamp-1", MsgID: `"l.` + strconv.Itoa(i) + `"`, At: now, Accepted: now}
				evs = append(evs, acc)
				if client == "app-1" {
					done := acc
					done.ID, done.Kind, done.Outcome, done.Result = "done:"+cmd, contracts.EventDone, contracts.OutcomeReply, []byte(`{"jsonrpc":"2.0","id":1,"result":1}`)
					evs = append(evs, done)
				}
			}
		}
		if err := w.Write(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
}

// cleared is how many submissions s's duplicate check has cleared.
func cleared(b *testing.B, s *cashier.Server) int {
	b.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(w.Body.String()) {
		if v, ok := strings.CutPrefix(line, `cafe_cashier_duplicate_checks_total{result="clear"} `); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return int(n)
		}
	}
	return 0
}
