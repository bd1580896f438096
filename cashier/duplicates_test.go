package cashier_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
	"cafe/contracts/registry"
)

const tokenApp2 = "token-app-2"

// seenRecords passes the duplicate check's queries to the real store and
// keeps each query's pairs; the first query waits for gate (if set) to
// close, later ones sleep delay first.
type seenRecords struct {
	cashier.Records
	gate  chan struct{}
	delay time.Duration

	mu      sync.Mutex
	queries [][]records.ClientMsg
}

func (r *seenRecords) PendingAmong(ctx context.Context, pairs []records.ClientMsg) ([]records.ClientMsg, error) {
	r.mu.Lock()
	first := len(r.queries) == 0
	r.queries = append(r.queries, slices.Clone(pairs))
	r.mu.Unlock()
	if first && r.gate != nil {
		<-r.gate
	} else if !first {
		time.Sleep(r.delay)
	}
	return r.Records.PendingAmong(ctx, pairs)
}

func (r *seenRecords) seen() [][]records.ClientMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.queries)
}

// twoApps is a cashier of app-1 and app-2 (no rate limit) reading a
// migrated schema of the test's own through r (its Records set here),
// each submission waiting up to budget; and the ledger's store, to write
// what the ledger would.
func twoApps(t *testing.T, r *seenRecords, budget time.Duration) (*records.Store, *cashier.Server) {
	t.Helper()
	db := recordstest.Schema(t)
	w := recordstest.Migrated(t, db)
	store, err := records.Open(db, true, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	reg, err := registry.Parse(fmt.Appendf(nil, "clients:\n  - id: app-1\n    token_sha256: %s\n    devices: [\"lamp-*\"]\n  - id: app-2\n    token_sha256: %s\n    devices: [\"lamp-*\"]\n"+brokertest.DevicesYAML("lamp-1"),
		hash(tokenApp1), hash(tokenApp2)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.ClientRate = 0
	s, err := cashier.New(cfg, reg, &fakeQueue{}, contracts.DefaultTopology(), prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r.Records = store
	s.UseRecords(r)
	cashier.TuneDuplicates(s, 1, budget)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := store.Pending(ctx, "app-1", []string{"warm-up"}); err != nil { // the pool's first connection, outside the budget
		t.Fatal(err)
	}
	return w, s
}

// pendingCommand writes an accepted command of client with id token msgID.
func pendingCommand(t *testing.T, w *records.Store, client, msgID string) {
	t.Helper()
	cmd, now := contracts.NewCommandID(), time.Now()
	if err := w.Write(context.Background(), []records.Event{{ID: "accepted:" + cmd, Kind: contracts.EventAccepted, CommandID: cmd,
		ClientID: client, DeviceID: "lamp-1", MsgID: msgID, At: now, Accepted: now}}); err != nil {
		t.Fatal(err)
	}
}

// answer is one submission's status and body.
type answer struct {
	status int
	body   string
	at     time.Time
}

// submitAs posts body as the app of token, within ctx.
func submitAs(ctx context.Context, s *cashier.Server, token, body string) answer {
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/devices/lamp-1/commands", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return answer{w.Code, w.Body.String(), time.Now()}
}

// waitQueued waits until n submissions wait for a query.
func waitQueued(t *testing.T, s *cashier.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); cashier.DupQueued(s) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d submissions queued for the duplicate check, want %d", cashier.DupQueued(s), n)
		}
	}
}

// Two apps' submissions with the same ids, coalesced into one query: each
// is refused only for its own app's pending id.
func TestCoalescedChecksSeeOnlyTheirOwnApp(t *testing.T) {
	r := &seenRecords{gate: make(chan struct{})}
	w, s := twoApps(t, r, 10*time.Second)
	pendingCommand(t, w, "app-1", "7")
	pendingCommand(t, w, "app-2", "8")
	ctx := context.Background()
	first := make(chan answer)
	go func() { first <- submitAs(ctx, s, tokenApp1, `{"jsonrpc":"2.0","method":"on","id":1}`) }() // its query waits at the gate
	brokertest.Eventually(t, 10*time.Second, "the first query sent", func() bool { return len(r.seen()) > 0 })
	both := `[{"jsonrpc":"2.0","method":"on","id":7},{"jsonrpc":"2.0","method":"on","id":8}]`
	answers := make([]chan answer, 2)
	for i, token := range []string{tokenApp1, tokenApp2} {
		answers[i] = make(chan answer)
		go func() { answers[i] <- submitAs(ctx, s, token, both) }()
		waitQueued(t, s, i+1)
	}
	close(r.gate)
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("the first submission: %d %s", a.status, a.body)
	}
	for i, want := range []string{"id 7 is", "id 8 is"} {
		a := <-answers[i]
		if a.status != http.StatusConflict || !strings.Contains(a.body, "a command with "+want+" still pending") {
			t.Errorf("app-%d: %d %s, want 409 naming only its own pending id (%s)", i+1, a.status, a.body, want)
		}
	}
	queries := r.seen()
	if len(queries) != 2 || len(queries[1]) != 4 {
		t.Fatalf("queries %v, want the first alone and then one of both submissions' four pairs", queries)
	}
	if got := labelled(t, s, "cafe_cashier_duplicate_checks_total", `result="conflict"`); got != "2" {
		t.Errorf("conflicts counted %s, want 2 (one a submission)", got)
	}
}

// Many submissions at once make fewer queries than submissions, and every
// one that reuses a pending id is still refused.
func TestConcurrentChecksShareQueries(t *testing.T) {
	r := &seenRecords{}
	w, s := twoApps(t, r, 10*time.Second)
	const n = 64
	for i := 0; i < n; i += 2 {
		pendingCommand(t, w, "app-1", fmt.Sprintf(`"p.%d"`, i))
	}
	start := make(chan struct{})
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i] = submitAs(context.Background(), s, tokenApp1, fmt.Sprintf(`{"jsonrpc":"2.0","method":"on","id":"p.%d"}`, i))
		})
	}
	close(start)
	wg.Wait()
	for i, a := range answers {
		if want := []int{http.StatusConflict, http.StatusAccepted}[i%2]; a.status != want {
			t.Errorf("submission %d (pending: %v): %d %s, want %d", i, i%2 == 0, a.status, a.body, want)
		}
	}
	queries, pairs := len(r.seen()), 0
	for _, q := range r.seen() {
		pairs += len(q)
	}
	t.Logf("%d submissions, %d queries", n, queries)
	if queries >= n || pairs != n {
		t.Fatalf("%d queries of %d pairs for %d submissions, want fewer queries, every pair once", queries, pairs, n)
	}
	if got := metric(t, s, "cafe_cashier_duplicate_lookup_pairs_count"); got != fmt.Sprint(queries) {
		t.Errorf("cafe_cashier_duplicate_lookup_pairs_count %s, want %d", got, queries)
	}
	if got := metric(t, s, "cafe_cashier_duplicate_lookup_pairs_sum"); got != fmt.Sprint(n) {
		t.Errorf("cafe_cashier_duplicate_lookup_pairs_sum %s, want %d", got, n)
	}
}

// A submission whose budget runs out while the query it waits for is slow
// is accepted unchecked (skipped), at its own deadline; the query goes
// on, and a submission in it with time left gets its answer. One whose
// request ends while it waits stops waiting too.
func TestCheckGivesUpOnASlowQuery(t *testing.T) {
	const budget = 2 * time.Second
	r := &seenRecords{gate: make(chan struct{}), delay: 1500 * time.Millisecond}
	w, s := twoApps(t, r, budget)
	for _, id := range []string{"7", "8", "9"} {
		pendingCommand(t, w, "app-1", id)
	}
	ctx := context.Background()
	first := make(chan answer)
	go func() { first <- submitAs(ctx, s, tokenApp1, `{"jsonrpc":"2.0","method":"on","id":1}`) }()
	brokertest.Eventually(t, 10*time.Second, "the first query sent", func() bool { return len(r.seen()) > 0 })
	early, late, left := make(chan answer), make(chan answer), make(chan answer)
	queued := time.Now()
	go func() { early <- submitAs(ctx, s, tokenApp1, `{"jsonrpc":"2.0","method":"on","id":7}`) }()
	waitQueued(t, s, 1)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	go func() { left <- submitAs(short, s, tokenApp1, `{"jsonrpc":"2.0","method":"on","id":9}`) }()
	waitQueued(t, s, 2)
	time.Sleep(budget / 2)
	go func() { late <- submitAs(ctx, s, tokenApp1, `{"jsonrpc":"2.0","method":"on","id":8}`) }()
	waitQueued(t, s, 3)
	close(r.gate) // the batch goes now and answers 1.5 s later: past early's budget (2 s from queued), within late's (3 s)
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("the first submission: %d %s", a.status, a.body)
	}
	if a := <-left; a.status != http.StatusAccepted || a.at.Sub(queued) > budget/2 {
		t.Errorf("the submission whose request ended: %d after %v, want 202 before its budget", a.status, a.at.Sub(queued))
	}
	e, l := <-early, <-late
	if e.status != http.StatusAccepted || !e.at.Before(l.at) {
		t.Errorf("the submission out of budget: %d %s after %v, want 202 (unchecked) at about %v, before the query's answer", e.status, e.body, e.at.Sub(queued), budget)
	}
	if l.status != http.StatusConflict {
		t.Errorf("the submission with time left: %d %s, want 409", l.status, l.body)
	}
	if q := r.seen(); len(q) != 2 || len(q[1]) != 2 {
		t.Errorf("queries %v, want the first and one of the two submissions still waiting", q)
	}
	if got := labelled(t, s, "cafe_cashier_duplicate_checks_total", `result="skipped"`); got != "2" {
		t.Errorf("checks skipped: %s, want 2", got)
	}
}
