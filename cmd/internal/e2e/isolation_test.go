package e2e

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The isolation suite: two tenants, apps A and B, each with its devices,
// on the real brokers and the real pipeline (cashier, barista, caller,
// devicesim as processes). B, its misbehaving device and identities made
// up to abuse the brokers' rules attack every link (MQTT, AMQP, HTTP);
// each attempt is counted and must fail, and the tenants' own traffic,
// sent before and after the attacks, must reach them in full: each app
// gets every result it asked for and nothing else.
//
// Each forged message carries a marker of its own (atk-N). The broker's
// administrator watches every topic of the test's devices and apps, and
// the apps record all they get: a marker seen anywhere is an attack that
// got through. The table of attempts is logged at the end (go test -v
// -run TestIsolation ./cmd/internal/e2e/); deploy/README.md quotes it.

// isolation is one run of the suite.
type isolation struct {
	p     *pipeline
	a, b  *tenant
	evil  *intruder // B's own device, which misbehaves
	tally *tally

	offline   func()      // takes A's app off MQTT, keeping its session
	listeners []*intruder // every intruder's connection, eavesdropping
	wild      []*intruder // the logins named with wildcards the broker let in

	oracles  []*watcher // cafe-admin's view: what the broker forwarded
	presence *watcher   // the presence of the test's devices, as cafe-admin sees it

	seq     atomic.Int64
	mu      sync.Mutex
	markers []verdict // forged messages that must never be seen
}

// verdict is a forged message, known by its marker, judged at the end.
type verdict struct{ link, attack, marker string }

// tenant is an app and the devices it may command, with the results it
// is owed.
type tenant struct {
	name    string
	app     *app
	devices []string

	mu   sync.Mutex
	sent []string // raw id tokens of the commands it sent with an id
}

func TestIsolation(t *testing.T) {
	t.Parallel()
	iso := newIsolation(t)
	iso.legit(t, "before")
	t.Run("MQTT", iso.mqtt)
	t.Run("AMQP", iso.amqp)
	t.Run("HTTP", iso.http)
	iso.legit(t, "after")
	iso.judge(t)
	t.Logf("isolation: what was tried (attempts, and how many succeeded)\n%s", iso.tally)
	if *isolationTable != "" {
		if err := os.WriteFile(*isolationTable, []byte(iso.tally.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// isolationTable is where TestIsolation also writes its table, for a
// summary outside the test log: go test ./cmd/internal/e2e/ -run
// TestIsolation -isolation-table /tmp/isolation.md
var isolationTable = flag.String("isolation-table", "", "write TestIsolation's table of attacks (markdown) to this file")

// marker registers a forged message of attack on link, judged at the end
// by where its marker is seen, and returns the marker it must carry.
func (iso *isolation) marker(link, attack string) string {
	m := iso.nextMarker()
	iso.mu.Lock()
	iso.markers = append(iso.markers, verdict{link, attack, m})
	iso.mu.Unlock()
	return m
}

// nextMarker is a marker of its own for a forged message judged at once
// (the apps' results still show it if it got through).
func (iso *isolation) nextMarker() string {
	return fmt.Sprintf("atk-%05d", iso.seq.Add(1)) // fixed width: no marker holds another
}

// seen reports where marker was seen: on a topic the administrator
// watches, or in an app's results.
func (iso *isolation) seen(marker string) string {
	for _, w := range iso.oracles {
		for _, m := range w.messages() {
			if strings.Contains(string(m.payload), marker) {
				return m.topic
			}
		}
	}
	for _, tn := range []*tenant{iso.a, iso.b} {
		for _, r := range tn.app.all() {
			if strings.Contains(string(r.raw), marker) {
				return "app " + tn.name + "'s results"
			}
		}
	}
	return ""
}

// legit has each tenant send a few commands to each of its devices and
// waits for all their results.
func (iso *isolation) legit(t *testing.T, wave string) {
	t.Helper()
	const perDevice = 5
	var ids []func()
	for _, tn := range []*tenant{iso.a, iso.b} {
		for _, d := range tn.devices {
			for i := range perDevice {
				id := fmt.Sprintf(`"%s-%s-%s-%d"`, tn.name, wave, strings.TrimPrefix(d, iso.p.devices+"-"), i)
				tn.submit(t, d, id, "echo", `["`+tn.name+`"]`)
				ids = append(ids, func() { tn.app.wait(t, id, resultWait) })
			}
		}
	}
	for _, wait := range ids {
		wait()
	}
}

// submit sends the command id (a raw id token) for device and notes
// that the tenant is owed its result.
func (tn *tenant) submit(t testing.TB, device, id, method, params string, headers ...string) {
	t.Helper()
	tn.expect(id)
	body := `{"jsonrpc":"2.0","method":"` + method + `","params":` + params + `,"id":` + id + `}`
	tn.app.submit(t, device, body, append([]string{"Cafe-Timeout", "10s"}, headers...)...)
}

func (tn *tenant) expect(id string) {
	tn.mu.Lock()
	tn.sent = append(tn.sent, id)
	tn.mu.Unlock()
}

// judge decides the verdicts left for the end: every forged message, and
// that each tenant got exactly what it asked for.
func (iso *isolation) judge(t *testing.T) {
	t.Helper()
	// No wait here: the tenants' traffic after the attacks went through
	// the same broker and pipeline after every forged message was taken.
	iso.mu.Lock()
	markers := slices.Clone(iso.markers)
	iso.mu.Unlock()
	for _, v := range markers {
		where := iso.seen(v.marker)
		iso.tally.record(t, v.link, v.attack, where != "", v.marker+" seen on "+where)
	}
	for _, tn := range []*tenant{iso.a, iso.b} {
		tn.owed(t)
	}
	iso.eavesdroppersHeardNothing(t)
}

// owed checks that the tenant's app got a result for every command it
// sent, and nothing else.
func (tn *tenant) owed(t *testing.T) {
	t.Helper()
	tn.mu.Lock()
	sent := slices.Clone(tn.sent)
	tn.mu.Unlock()
	got := map[string]int{}
	for _, r := range tn.app.all() {
		got[string(r.resp.ID)]++
	}
	for _, id := range sent {
		if got[id] == 0 {
			t.Errorf("app %s never got the result of its command %s", tn.name, id)
		}
		delete(got, id)
	}
	for id, n := range got {
		t.Errorf("app %s got %d results with id %s, which it never sent", tn.name, n, id)
	}
	t.Logf("app %s: %d commands sent, every result received, nothing else", tn.name, len(sent))
}

// tally counts the attempts of each attack and how many succeeded.
type tally struct {
	mu   sync.Mutex
	rows []*attackRow
}

type attackRow struct {
	link, attack        string
	attempts, succeeded int
}

// record counts one attempt of attack on link; one that succeeded fails
// the test, saying how.
func (ta *tally) record(t testing.TB, link, attack string, succeeded bool, how string) {
	t.Helper()
	ta.mu.Lock()
	i := slices.IndexFunc(ta.rows, func(r *attackRow) bool { return r.link == link && r.attack == attack })
	if i < 0 {
		ta.rows = append(ta.rows, &attackRow{link: link, attack: attack})
		i = len(ta.rows) - 1
	}
	r := ta.rows[i]
	r.attempts++
	if succeeded {
		r.succeeded++
	}
	ta.mu.Unlock()
	if succeeded {
		t.Errorf("%s: %s SUCCEEDED: %s", link, attack, how)
	}
}

// links orders the table.
var links = map[string]int{"MQTT": 0, "AMQP": 1, "HTTP": 2}

// String is the table, one line per attack, with the totals.
func (ta *tally) String() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var b strings.Builder
	total, won := 0, 0
	fmt.Fprintf(&b, "| link | attack | attempts | succeeded |\n|---|---|---:|---:|\n")
	rows := slices.Clone(ta.rows)
	slices.SortStableFunc(rows, func(x, y *attackRow) int { return links[x.link] - links[y.link] })
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d |\n", r.link, r.attack, r.attempts, r.succeeded)
		total, won = total+r.attempts, won+r.succeeded
	}
	fmt.Fprintf(&b, "| all | %d attacks | %d | %d |\n", len(ta.rows), total, won)
	return b.String()
}
