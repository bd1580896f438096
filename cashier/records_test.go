package cashier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// ledgerStore is a migrated schema of the test's own, to write records
// into as the ledger would, and the cashier reading it read-only.
func ledgerStore(t *testing.T) (*records.Store, *cashier.Server) {
	t.Helper()
	return ledgerStoreVia(t, recordstest.Schema(t), func(r cashier.Records) cashier.Records { return r })
}

// ledgerStoreOn is ledgerStore on the database at dbURL.
func ledgerStoreOn(t *testing.T, dbURL string) (*records.Store, *cashier.Server) {
	t.Helper()
	return ledgerStoreVia(t, dbURL, func(r cashier.Records) cashier.Records { return r })
}

// ledgerStoreVia is ledgerStore on the database at dbURL with the cashier
// reading through via(r).
func ledgerStoreVia(t *testing.T, dbURL string, via func(cashier.Records) cashier.Records) (*records.Store, *cashier.Server) {
	t.Helper()
	w := recordstest.Migrated(t, dbURL)
	r, err := records.Open(dbURL, true, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	s := newServer(t, &fakeQueue{})
	s.UseRecords(via(r))
	return w, s
}

// finished writes n done commands of client with ids first.. first+n-1.
func finished(t *testing.T, w *records.Store, client string, first, n int) {
	t.Helper()
	const batch = 2000
	for lo := first; lo < first+n; lo += batch {
		var evs []records.Event
		for i := lo; i < min(lo+batch, first+n); i++ {
			id, cmd, now := strconv.Itoa(i), contracts.NewCommandID(), time.Now()
			base := records.Event{CommandID: cmd, ClientID: client, DeviceID: "lamp-1", MsgID: id, At: now}
			acc, done := base, base
			acc.ID, acc.Kind, acc.Accepted = "accepted:"+cmd, contracts.EventAccepted, now
			done.ID, done.Kind, done.Outcome = "done:"+cmd, contracts.EventDone, contracts.OutcomeReply
			done.Result = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"n": %d}}`, i, i)
			evs = append(evs, acc, done)
		}
		if err := w.Write(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
}

type page struct {
	Results []struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result"`
	} `json:"results"`
	Next string `json:"next"`
}

func getPage(t *testing.T, s *cashier.Server, token, after, query string) (int, page) {
	t.Helper()
	res, body := do(t, s, call{method: http.MethodGet, path: "/v1/results?after=" + url.QueryEscape(after) + query, token: token})
	var p page
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("page %s: %v", body, err)
		}
	}
	return res.StatusCode, p
}

// An app that was away for 20 000 results (twice Mosquitto's per-app
// queue) gets every one back by following the cursors: none lost, none
// twice, in the order they finished, each with the bytes pushed on MQTT.
func TestResultsPagesRecoverEveryResultOnce(t *testing.T) {
	w, s := ledgerStore(t)
	const n = 20_000
	start := time.Now()
	finished(t, w, "app-1", 1, n)
	t.Logf("%d results written in %v", n, time.Since(start))
	start = time.Now()
	seen, after := map[string]bool{}, ""
	for pages := 0; pages < n; pages++ {
		code, p := getPage(t, s, tokenApp1, after, "&limit=1000")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if len(p.Results) == 0 {
			break
		}
		for _, r := range p.Results {
			if seen[string(r.ID)] {
				t.Fatalf("id %s twice", r.ID)
			}
			seen[string(r.ID)] = true
			if want := fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"n": %s}}`, r.ID, r.ID); string(r.Result) != want {
				t.Fatalf("result %s, want the bytes as pushed %s", r.Result, want)
			}
			if len(seen) != mustAtoi(t, string(r.ID)) {
				t.Fatalf("id %s at position %d: not in the order they finished", r.ID, len(seen))
			}
		}
		after = p.Next
	}
	if len(seen) != n {
		t.Fatalf("recovered %d of %d results", len(seen), n)
	}
	t.Logf("%d results read in pages of 1000 in %v", n, time.Since(start))
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A long poll waits for a result that comes while it waits, answers at
// its first look after the result is written (not when the wait ends),
// and an empty page keeps the cursor.
func TestResultsLongPoll(t *testing.T) {
	looks := &countedResults{looked: make(chan int64, 64)}
	w, s := ledgerStoreVia(t, recordstest.Schema(t), func(r cashier.Records) cashier.Records { looks.Records = r; return looks })
	finished(t, w, "app-1", 1, 1)
	_, first := getPage(t, s, tokenApp1, "", "")
	_, empty := getPage(t, s, tokenApp1, first.Next, "")
	if len(empty.Results) != 0 || empty.Next != first.Next {
		t.Fatalf("empty page %+v, want none and the same cursor %s", empty, first.Next)
	}
	before := looks.n.Load()
	type answer struct {
		code int
		body []byte
	}
	answered := make(chan answer, 1)
	go func() {
		res, body := do(t, s, call{method: http.MethodGet, path: "/v1/results?after=" + url.QueryEscape(first.Next) + "&wait=10s", token: tokenApp1})
		answered <- answer{res.StatusCode, body}
	}()
	// Two looks by the poll: it found nothing, waited, and looked again.
	for looks.n.Load() < before+2 {
		select {
		case <-looks.looked:
		case a := <-answered:
			t.Fatalf("the long poll answered %d %s before any result was written, want it to wait", a.code, a.body)
		case <-time.After(10 * time.Second):
			t.Fatal("the long poll never looked at the records")
		}
	}
	select {
	case a := <-answered:
		t.Fatalf("the long poll answered %d %s before any result was written, want it to wait", a.code, a.body)
	default:
	}
	finished(t, w, "app-1", 2, 1)
	written := looks.n.Load() // looks begun before the result was in: each may have missed it
	var a answer
	select {
	case a = <-answered:
	case <-time.After(20 * time.Second):
		t.Fatal("the long poll never answered")
	}
	var p page
	if a.code != http.StatusOK {
		t.Fatalf("long poll: status %d %s", a.code, a.body)
	}
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("page %s: %v", a.body, err)
	}
	if len(p.Results) != 1 || string(p.Results[0].ID) != "2" {
		t.Fatalf("long poll got %+v, want id 2", p)
	}
	if n := looks.n.Load(); n > written+1 {
		t.Errorf("the long poll looked %d times after the result was written, want it answered at the first", n-written)
	}
}

// countedResults counts the cashier's reads of results, and tells each on
// looked (dropping the news when nobody listens).
type countedResults struct {
	cashier.Records
	n      atomic.Int64
	looked chan int64
}

func (c *countedResults) Results(ctx context.Context, client string, seq int64, since time.Time, limit int) ([]records.Result, error) {
	n := c.n.Add(1)
	select {
	case c.looked <- n:
	default:
	}
	return c.Records.Results(ctx, client, seq, since, limit)
}

// One app reads none of another's commands or results (0 of N).
func TestRecordsAreTheAppsOwn(t *testing.T) {
	w, s := ledgerStore(t)
	const n = 50
	finished(t, w, "slow", 1, n)
	_, p := getPage(t, s, tokenApp1, "", "&limit=1000")
	if len(p.Results) != 0 {
		t.Fatalf("app-1 read %d of slow's %d results", len(p.Results), n)
	}
	for i := 1; i <= n; i++ {
		res, _ := do(t, s, call{method: http.MethodGet, path: "/v1/commands/" + strconv.Itoa(i), token: tokenApp1})
		if res.StatusCode != http.StatusNotFound {
			t.Fatalf("app-1 reading slow's command %d: status %d, want 404", i, res.StatusCode)
		}
	}
	_, own := getPage(t, s, tokenSlow, "", "&limit=1000")
	if len(own.Results) != n {
		t.Fatalf("slow reads %d of its own %d results", len(own.Results), n)
	}
}

// GET /v1/commands/{id} has the status, history and exact result bytes.
func TestCommandRecord(t *testing.T) {
	w, s := ledgerStore(t)
	finished(t, w, "app-1", 7, 1)
	res, body := do(t, s, call{method: http.MethodGet, path: "/v1/commands/7", token: tokenApp1})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	var rec struct {
		ID      json.RawMessage `json:"id"`
		Status  string          `json:"status"`
		History []records.Step  `json:"history"`
		Result  json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	if string(rec.ID) != "7" || rec.Status != "done" || len(rec.History) != 2 || string(rec.Result) != `{"jsonrpc":"2.0","id":7,"result":{"n": 7}}` {
		t.Fatalf("record %s", body)
	}
}

// Malformed ids, cursors, waits and limits are 400s with a JSON-RPC error
// naming the field; no token is 401; no database is 503.
func TestRecordsRefuseBadInput(t *testing.T) {
	_, s := ledgerStore(t)
	for _, tc := range []struct {
		name, path, token, field string
		want                     int
	}{
		{"id with a slash", "/v1/commands/a%2Fb", tokenApp1, "id", 400},
		{"id too long", "/v1/commands/" + strings.Repeat("a", 200), tokenApp1, "id", 400},
		{"id with a space", "/v1/commands/a%20b", tokenApp1, "id", 400},
		{"unknown id", "/v1/commands/nope", tokenApp1, "id", 404},
		{"cursor garbage", "/v1/results?after=zzz", tokenApp1, "after", 400},
		{"cursor forged", "/v1/results?after=c1cy0x", tokenApp1, "after", 400},
		{"cursor twice", "/v1/results?after=c1czE&after=c1czI", tokenApp1, "after", 400},
		{"wait not a duration", "/v1/results?wait=soon", tokenApp1, "wait", 400},
		{"wait negative", "/v1/results?wait=-1s", tokenApp1, "wait", 400},
		{"wait too long", "/v1/results?wait=2h", tokenApp1, "wait", 400},
		{"limit zero", "/v1/results?limit=0", tokenApp1, "limit", 400},
		{"limit huge", "/v1/results?limit=99999999999999999999", tokenApp1, "limit", 400},
		{"no token", "/v1/results", "", "Authorization", 401},
		{"no token for a command", "/v1/commands/7", "", "Authorization", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := do(t, s, call{method: http.MethodGet, path: tc.path, token: tc.token})
			var e struct {
				ID    json.RawMessage `json:"id"`
				Error struct {
					Data contracts.Detail `json:"data"`
				} `json:"error"`
			}
			if res.StatusCode != tc.want || json.Unmarshal(body, &e) != nil || string(e.ID) != "null" || e.Error.Data.Field != tc.field {
				t.Fatalf("status %d body %s; want %d naming %s", res.StatusCode, body, tc.want, tc.field)
			}
		})
	}
	bare := newServer(t, &fakeQueue{})
	if res, _ := do(t, bare, call{method: http.MethodGet, path: "/v1/results", token: tokenApp1}); res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("without a database: status %d, want 503", res.StatusCode)
	}
}

// A command's id may not be reused while it is pending (409, nothing
// queued); once it is done it may. The 202 names where its record is.
func TestDuplicateIDWhilePendingIsRefused(t *testing.T) {
	w, s := ledgerStore(t)
	cmd := contracts.NewCommandID()
	accepted := records.Event{ID: "accepted:" + cmd, Kind: contracts.EventAccepted, CommandID: cmd, ClientID: "app-1",
		DeviceID: "lamp-1", MsgID: "7", At: time.Now(), Accepted: time.Now()}
	if err := w.Write(context.Background(), []records.Event{accepted}); err != nil {
		t.Fatal(err)
	}
	getPage(t, s, tokenApp1, "", "") // the pool's first connection takes longer than the check's budget
	submit := func(body string) (*http.Response, []byte) {
		return do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: body})
	}
	res, body := submit(one) // id 7, pending
	if res.StatusCode != http.StatusConflict || !strings.Contains(string(body), `"code":-32017`) {
		t.Fatalf("reusing a pending id: status %d %s, want 409 -32017", res.StatusCode, body)
	}
	res, _ = submit(`[{"jsonrpc":"2.0","method":"on","id":8},{"jsonrpc":"2.0","method":"on","id":7}]`)
	if res.StatusCode != http.StatusConflict {
		t.Fatalf("a batch naming a pending id: status %d, want 409", res.StatusCode)
	}
	done := accepted
	done.ID, done.Kind, done.Result, done.Outcome = "done:"+cmd, contracts.EventDone, []byte(`{"jsonrpc":"2.0","id":7,"result":1}`), contracts.OutcomeReply
	if err := w.Write(context.Background(), []records.Event{done}); err != nil {
		t.Fatal(err)
	}
	res, body = submit(one)
	if res.StatusCode != http.StatusAccepted || res.Header.Get("Location") != "/v1/commands/7" {
		t.Fatalf("reusing a finished id: status %d Location %q %s, want 202 at /v1/commands/7", res.StatusCode, res.Header.Get("Location"), body)
	}
	res, _ = submit(`[{"jsonrpc":"2.0","method":"on","id":"a-1"},{"jsonrpc":"2.0","method":"on"},{"jsonrpc":"2.0","method":"on","id":"9"}]`)
	if want := `</v1/commands/a-1>; rel="status", </v1/commands/%229%22>; rel="status"`; res.StatusCode != http.StatusAccepted || res.Header.Get("Link") != want {
		t.Fatalf("batch: status %d Link %q, want %q", res.StatusCode, res.Header.Get("Link"), want)
	}
}

// The path of a command's record and back, for every kind of id.
func TestCommandPath(t *testing.T) {
	for _, tc := range []struct{ token, path string }{
		{"7", "/v1/commands/7"},
		{"-3", "/v1/commands/-3"},
		{`"a-7"`, "/v1/commands/a-7"},
		{`"7"`, "/v1/commands/%227%22"},
		{`"x:y.z_"`, "/v1/commands/x:y.z_"},
	} {
		if got := cashier.CommandPath([]byte(tc.token)); got != tc.path {
			t.Errorf("CommandPath(%s) = %s, want %s", tc.token, got, tc.path)
		}
	}
}

// A ledger database that accepts connections and never answers (a hung
// server, a partition) costs the first submissions the check's budget and
// the rest nothing: after three lookups in a row fail, the check is
// skipped without asking, and every command is still accepted.
func TestDuplicateCheckStopsAskingAHungDatabase(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	r, err := records.Open("postgres://cafe@"+silent.Addr().String()+"/cafe?sslmode=disable&connect_timeout=10", true, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	s := newServer(t, &fakeQueue{})
	s.UseRecords(r)
	for i := range 10 {
		res, body := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: fmt.Sprintf(`{"jsonrpc":"2.0","method":"on","id":%d}`, i)})
		if res.StatusCode != http.StatusAccepted {
			t.Fatalf("command %d with the database hung: status %d %s, want 202", i, res.StatusCode, body)
		}
	}
	skipped := labelled(t, s, "cafe_cashier_duplicate_checks_total", `result="skipped"`)
	open := labelled(t, s, "cafe_cashier_duplicate_checks_total", `result="open"`)
	if skipped != "3" || open != "7" {
		t.Fatalf("checks skipped after waiting %s, not asked %s; want 3 and 7", skipped, open)
	}
}

// labelled is the value of a metric's series with the label pair on s's
// /metrics.
func labelled(t *testing.T, s *cashier.Server, name, label string) string {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(w.Body.String()) {
		if v, ok := strings.CutPrefix(line, name+"{"+label+"} "); ok {
			return strings.TrimSpace(v)
		}
	}
	return "0"
}

// PostgreSQL stopped and started again (on a server of the test's own):
// while it is down the records answer 503; once it is up, the first
// request reads again without the cashier being restarted, also after a
// restart quicker than the pool's liveness check (its connections all
// dead, none pinged). (The duplicate check's recovery is records'
// TestQuickRestartLeavesNoDeadConnections: its 50 ms budget, which a
// fresh connection may overrun on a loaded machine, makes it no test here.)
func TestRecordsReadAgainAfterPostgresRestarts(t *testing.T) {
	srv := recordstest.NewServer(t)
	w, s := ledgerStoreOn(t, srv.URL())
	finished(t, w, "app-1", 7, 1)
	get := func() (int, string) {
		res, body := do(t, s, call{method: http.MethodGet, path: "/v1/commands/7", token: tokenApp1})
		return res.StatusCode, string(body)
	}
	id := 100
	post := func() {
		t.Helper()
		id++
		if res, body := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: fmt.Sprintf(`{"jsonrpc":"2.0","method":"on","id":%d}`, id)}); res.StatusCode != http.StatusAccepted {
			t.Fatalf("command %d: status %d %s, want 202", id, res.StatusCode, body)
		}
	}
	for _, restart := range []struct {
		name string
		mode string
		gap  bool // a request while the server is down
	}{{"fast", "fast", true}, {"immediate", "immediate", true}, {"quick fast", "fast", false}, {"quick immediate", "immediate", false}} {
		for range 3 { // connections in the pool, used just now
			if code, body := get(); code != http.StatusOK {
				t.Fatalf("before the %s restart: status %d %s", restart.name, code, body)
			}
			post()
		}
		srv.Stop(restart.mode)
		if restart.gap {
			if code, body := get(); code != http.StatusServiceUnavailable {
				t.Fatalf("with PostgreSQL stopped (%s): status %d %s, want 503", restart.name, code, body)
			}
		}
		srv.Start()
		if code, body := get(); code != http.StatusOK {
			t.Errorf("first read after the %s restart: status %d %s, want 200", restart.name, code, body)
		}
	}
}
