package e2e

import (
	"cmp"
	"fmt"
	"net/http"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// PostgreSQL really stopped (-m fast, then -m immediate: a crash) under
// load and started again each time, on a server of the test's own, with
// the real binaries: commands are accepted and answered over MQTT all
// along, the ledger reports itself not ready while PostgreSQL is down and
// ready again after, neither it nor the cashier restarted; every command
// ends in the ledger once, with its four events, and the cashier serves a
// record of a command posted while PostgreSQL was down.
func TestLedgerCatchesUpAfterPostgresRestarts(t *testing.T) {
	// pgOutage is how long PostgreSQL stays down each time, the app
	// posting all along: the fault's length, the scenario's shape (the
	// ledger's retries span it), not a wait for anything.
	const pgOutage = 2 * time.Second

	srv := recordstest.NewServer(t) // first: its cleanup runs once every process is gone
	dbEnv := "CAFE_POSTGRES_URL=" + srv.URL()
	p, devices, a := scene(t, setup{baristas: 1, callers: 1, cashierEnv: []string{dbEnv}}, 2)
	ledger := startService(t, "ledger", "ledger", append([]string{dbEnv}, p.env...))
	ledger.waitReady(t)
	n := 0
	post := func() {
		t.Helper()
		n++
		a.submit(t, devices.ids[n%2], fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":{"i":%d},"id":%d}`, n, n))
	}
	results := func() int {
		return recordstest.Count(t, srv.URL(), "SELECT count(*) FROM cafe_commands WHERE result IS NOT NULL")
	}
	for range 200 {
		post()
	}
	brokertest.Eventually(t, resultWait, "the ledger writes", func() bool { return results() > 0 })
	var firstDown int // the first command posted with PostgreSQL down
	for _, mode := range []string{"fast", "immediate"} {
		srv.Stop(mode)
		down := time.Now()
		before := n
		firstDown = cmp.Or(firstDown, n+1)
		for time.Since(down) < pgOutage {
			post()
		}
		brokertest.Eventually(t, 5*time.Second, "the ledger reports PostgreSQL refusing its writes", func() bool {
			return get(ledger.addr, "/readyz") != http.StatusOK
		})
		srv.Start()
		outage, up := time.Since(down), time.Now()
		brokertest.Eventually(t, 2*resultWait, fmt.Sprintf("the ledger catches up with the %d results", n), func() bool { return results() >= n })
		t.Logf("%s stop: %d commands posted while PostgreSQL was down %v; the ledger had written all %d posted until then %v after the start",
			mode, n-before, outage.Round(time.Millisecond), n, time.Since(up).Round(time.Millisecond))
		brokertest.Eventually(t, readyTimeout, "the ledger ready again", func() bool { return get(ledger.addr, "/readyz") == http.StatusOK })
	}
	for range 200 {
		post()
	}
	brokertest.Eventually(t, resultWait, fmt.Sprintf("every one of %d results in the ledger", n), func() bool { return results() == n })
	brokertest.Eventually(t, resultWait, "every result reached the app", func() bool { return len(a.all()) >= n })
	brokertest.Eventually(t, resultWait, "every command delivered in the ledger", func() bool {
		return recordstest.Count(t, srv.URL(), "SELECT count(*) FROM cafe_commands WHERE status = $1", int(records.StatusDelivered)) == n
	})
	if seqs := recordstest.Count(t, srv.URL(), "SELECT count(DISTINCT done_seq) FROM cafe_commands"); seqs != n {
		t.Errorf("%d distinct result numbers, want %d", seqs, n)
	}
	for _, kind := range []string{"accepted", "sent", "done", "delivered"} {
		if got := recordstest.Count(t, srv.URL(), "SELECT count(*) FROM cafe_events WHERE kind = $1", kind); got != n {
			t.Errorf("%d %s events, want %d", got, kind, n)
		}
	}
	if code := get(ledger.addr, "/readyz"); code != http.StatusOK {
		t.Errorf("ledger /readyz %d after catching up, want 200", code)
	}
	if f := ledger.counter(t, "cafe_ledger_write_failures_total"); f == 0 {
		t.Error("the ledger counted no failed write while PostgreSQL was down")
	}
	if code, rec := a.record(t, fmt.Sprintf("/v1/commands/%d", firstDown)); code != http.StatusOK || rec.Result == nil {
		t.Errorf("GET the first command posted with PostgreSQL down: %d %+v", code, rec)
	}
	t.Logf("%d commands in all", n)
}
