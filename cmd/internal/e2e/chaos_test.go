//go:build chaos

package e2e

// The chaos suite: faults a real deployment meets, under load, with the
// real binaries and brokers. Each scenario sends a known set of commands,
// injects its fault while they flow, then counts from the app's side every
// result that arrived, and prints one row:
//
//	accepted   commands the cashier answered 202
//	refused    commands answered otherwise (503, or no answer at all)
//	delivered  accepted commands with at least one result, over MQTT (on
//	           the app's topic) or over HTTP (GET /v1/results, which the app
//	           pages through from the scenario's start for what it missed)
//	via MQTT   accepted commands whose result came over MQTT
//	HTTP only  accepted commands whose result the app had only over HTTP
//	dead       accepted commands in the dead-letter queue (their app also
//	           gets a -32005 result, so they are counted as delivered too)
//	lost       accepted − (delivered ∪ dead): must be 0
//	dups       results beyond the first for the same id
//	late       refused commands (503) that were delivered all the same: a
//	           publish whose confirm did not come in time may still have
//	           been enqueued (see the README, "On a cluster")
//	misattributed  results whose body is not the answer to the command of
//	           their id (the echo of its params): must be 0
//	recovery   from the end of the fault until a probe command submitted
//	           then (resubmitted while refused) was answered
//
// Run it with `task chaos` (all scenarios) or `task chaos:short` (the CI
// subset, -short: kill_barista, poison, app_away, queue_full with less load). It
// restarts the shared brokers: run it alone, never beside other tests.
//
// Every scenario runs a ledger (on a PostgreSQL schema of its own), so the
// app can fetch over HTTP what MQTT did not bring; a result that came both
// ways must be the same bytes.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/appclient"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/records/recordstest"
)

var chaosOut = flag.String("chaos-out", "", "also write the chaos table (Markdown) to this file")

// chaosRow is one scenario's outcome.
type chaosRow struct {
	name                                                       string
	accepted, refused, delivered, dead, lost, dups, errorCodes int
	viaMQTT, httpOnly                                          int // delivered, by the way the result came
	late, misattributed                                        int
	ghosts                                                     int // refused (503) commands the ledger still shows as queued
	deadTotal                                                  int // everything in the dead-letter queue, poison included
	faultTook                                                  time.Duration
	refusedP99                                                 time.Duration // how fast refusals came
	recovery                                                   time.Duration
	note                                                       string
}

// scenario is one fault under load.
type scenario struct {
	name    string
	short   bool   // part of the CI subset
	summary string // what the fault is, for the table
	setup   setup
	devices int
	flags   []string // devicesim flags
	rate    int      // commands per second
	total   int      // commands in all (short: a third)
	timeout string   // Cafe-Timeout of the load
	// prepare, when set, runs once the pipeline is up, before the load.
	prepare func(t *testing.T, c *chaosRun)
	// fault runs once a third of the load is sent (with early, before
	// any); it returns when the fault is over (the moment recovery is
	// measured from).
	fault func(t *testing.T, c *chaosRun) time.Time
	early bool
	// mustRefuse: the fault is one the cashier answers with 503s (a full
	// queue), so a row with nothing refused did not inject it.
	mustRefuse bool
}

func TestChaos(t *testing.T) { runChaos(t, scenarios()) }

// runChaos runs each scenario as a subtest and prints the table of their
// rows (also to -chaos-out).
func runChaos(t *testing.T, all []scenario) {
	var rows []chaosRow
	for _, sc := range all {
		if testing.Short() && !sc.short {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			row := runScenario(t, sc)
			rows = append(rows, row)
			t.Logf("%s: accepted %d refused %d (late %d) delivered %d (MQTT %d, HTTP only %d) dead %d lost %d dups %d misattributed %d errors %d dead queue %d recovery %v ghosts %d",
				row.name, row.accepted, row.refused, row.late, row.delivered, row.viaMQTT, row.httpOnly, row.dead, row.lost, row.dups, row.misattributed, row.errorCodes, row.deadTotal, row.recovery.Round(time.Millisecond), row.ghosts)
			if row.lost != 0 {
				t.Errorf("%d accepted commands lost", row.lost)
			}
			if sc.mustRefuse && row.refused == 0 {
				t.Errorf("nothing refused: the fault was not injected")
			}
			if row.ghosts != 0 {
				t.Errorf("%d refused commands still recorded as queued (their ids held with 409)", row.ghosts)
			}
		})
	}
	table := chaosTable(rows)
	fmt.Println(table)
	if *chaosOut != "" {
		if err := os.WriteFile(*chaosOut, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func scenarios() []scenario {
	base := setup{baristas: 2, callers: 1}
	return []scenario{
		{
			name: "kill_barista", short: true, summary: "`kill -9` of one of two baristas with commands in flight",
			setup: base, devices: 8, flags: []string{"--latency", "50ms"}, rate: 150, total: 1500, timeout: "60s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.p.baristas[0].signal(t, syscall.SIGKILL)
				c.p.baristas[0].wait(t, stopTimeout)
				return time.Now()
			},
		},
		{
			name: "rabbitmq_restart", summary: "RabbitMQ stopped and started again (full node restart)",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 100, total: 1500, timeout: "120s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				brokerScript(t, "restart-rabbitmq")
				return time.Now()
			},
		},
		{
			name: "mosquitto_restart", summary: "Mosquitto stopped and started again",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 100, total: 1500, timeout: "60s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				brokerScript(t, "restart-mosquitto")
				return time.Now()
			},
		},
		{
			name: "devices_flap", summary: "the device fleet goes offline (SIGTERM) and comes back 2s later",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 100, total: 1500, timeout: "30s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.fleet.stop(t, stopTimeout)
				time.Sleep(2 * time.Second) // the outage itself
				c.fleet = c.p.restartDevices(t, c.fleet, c.flags...)
				return time.Now()
			},
		},
		{
			name: "poison", short: true, summary: "poison messages (garbage, no headers, lying headers) mixed into the commands queue",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 150, total: 1500, timeout: "30s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.poison(t, 100)
				return time.Now()
			},
		},
		{
			name: "app_away", short: true, summary: "the app's MQTT connection gone for 2s, its session with it (it comes back with a new one)",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 150, total: 1500, timeout: "30s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.app.away(t, 2*time.Second)
				return time.Now()
			},
		},
		{
			name: "app_offline", summary: "the app offline, its session kept, for 20 000 results: twice what Mosquitto queues for it (max_queued_messages 10000)",
			setup: base, devices: 8, flags: []string{"--latency", "1ms"}, rate: 400, total: 20000, timeout: "120s", early: true,
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.app.stop() // the session stays: Mosquitto queues what it can
				<-c.loaded
				c.p.waitDrained(t, 3*time.Minute)
				c.app.stop = subscribeResults(t, c.app.session, false, c.app.onResult)
				return time.Now()
			},
		},
		{
			name: "queue_full", short: true, summary: "the commands queue is full (max length 50) under a burst",
			mustRefuse: true,
			setup: setup{baristas: 1, callers: 1, topology: func(top *contracts.Topology) { top.CommandsMaxLength = 50 },
				cashierEnv: []string{"CAFE_QUEUE_MAX_LENGTH=50"},
				baristaEnv: []string{"CAFE_QUEUE_MAX_LENGTH=50", "CAFE_BARISTA_CONCURRENCY=8"}, callerEnv: []string{"CAFE_QUEUE_MAX_LENGTH=50"}},
			devices: 8, flags: []string{"--latency", "100ms"}, rate: 300, total: 1500, timeout: "60s",
			fault: func(t *testing.T, c *chaosRun) time.Time { return time.Now() }, // the load is the fault
		},
		{
			name: "sigterm_all", summary: "SIGTERM to cashier, baristas and caller, then all started again",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 100, total: 1500, timeout: "60s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				c.restartAll(t)
				return time.Now()
			},
		},
		{
			name: "memory_alarm", summary: "RabbitMQ memory alarm for 3s (publishers blocked)",
			setup: base, devices: 8, flags: []string{"--latency", "10ms"}, rate: 100, total: 1500, timeout: "60s",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				rabbitmqctl(t, "set_vm_memory_high_watermark", "0.0000001")
				t.Cleanup(func() { rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4") })
				time.Sleep(3 * time.Second)
				rabbitmqctl(t, "set_vm_memory_high_watermark", "0.4")
				return time.Now()
			},
		},
	}
}

// chaosRun is one scenario in progress.
type chaosRun struct {
	p       *pipeline
	fleet   *fleet
	flags   []string // the fleet's devicesim flags
	app     *persistentApp
	fetched *fetchedResults // what the app read over GET /v1/results
	loaded  chan struct{}   // closed once the load is all sent and answered

	cashierMu   sync.Mutex
	cashierBase string

	refusedIDs sync.Map // id → true: answered other than 202
}

func (c *chaosRun) base() string {
	c.cashierMu.Lock()
	defer c.cashierMu.Unlock()
	return c.cashierBase
}

func runScenario(t *testing.T, sc scenario) chaosRow {
	total := sc.total
	if testing.Short() {
		total /= 3
	}
	dbEnv := "CAFE_POSTGRES_URL=" + recordstest.Schema(t)
	s := sc.setup
	s.cashierEnv = append([]string{dbEnv}, s.cashierEnv...)
	p := newPipeline(t, s)
	startService(t, "ledger", "ledger", append(append([]string{dbEnv}, p.env...), s.callerEnv...)).waitReady(t)
	p.waitConsumers(t, p.top.EventsQueue(), 1)
	c := &chaosRun{p: p, cashierBase: p.url(), flags: sc.flags, loaded: make(chan struct{})}
	c.fleet = p.startDevices(t, sc.devices, sc.flags...)
	c.app = newPersistentApp(t, p.url(), p.client)
	c.fetched = newFetchedResults(time.Now().Add(-time.Second))
	if sc.prepare != nil {
		sc.prepare(t, c)
	}

	// The load: total commands at rate, spread over the fleet's devices.
	var accepted sync.Map // id → true
	var refused atomic.Int64
	var refusals latencies
	var sent atomic.Int64
	go func() {
		defer close(c.loaded)
		c.load(sc, total, &sent, &accepted, &refused, &refusals)
	}()
	if !sc.early {
		brokertest.Eventually(t, time.Minute, "the load did not get going", func() bool { return sent.Load() >= int64(total/3) })
	}
	faultStart := time.Now()
	faultEnd := sc.fault(t, c)
	recovery := c.probe(t, faultEnd)
	<-c.loaded

	ids := map[string]bool{}
	accepted.Range(func(k, _ any) bool { ids[k.(string)] = true; return true })
	row := chaosRow{name: sc.name, accepted: len(ids), refused: int(refused.Load()), recovery: recovery, note: sc.summary,
		faultTook: faultEnd.Sub(faultStart), refusedP99: refusals.p99()}

	// Wait until every accepted command has a result (over MQTT, or
	// fetched over HTTP) or a dead letter.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		seen, codes := c.app.snapshot()
		c.fetched.fetch(t, c.base(), c.p.client.token)
		dead, deadTotal := c.deadLettered(t, ids)
		row.count(ids, seen, codes, c.fetched.snapshot(), dead)
		row.deadTotal = deadTotal
		if row.lost == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.fetched.compare(t, c.app)
	// Nothing reaches the app but answers to what it sent (and notices
	// for broken commands in its name): no result for a message put in
	// the queue behind the cashier's back.
	// A refused command may be delivered late (counted), but nothing else
	// the app did not send.
	seen, _ := c.app.snapshot()
	for id := range seen {
		if _, wasRefused := c.refusedIDs.Load(id); wasRefused && !ids[id] {
			row.late++
		} else if !ids[id] && !strings.HasPrefix(id, "probe-") && id != garbled {
			t.Errorf("the app got a result for %q, which it never sent", id)
		}
	}
	row.misattributed = c.app.misattributed()
	if row.misattributed != 0 {
		t.Errorf("%d results carried the answer to another command than their id's", row.misattributed)
	}
	if sc.mustRefuse {
		row.ghosts = c.ghosts(t)
	}
	return row
}

// ghosts counts the commands answered 503 because RabbitMQ nacked them
// (a full queue) that the ledger still records as queued: the events
// queue took their copy though the commands queue refused them, and the
// cashier's refusal is what marks them refused, freeing their ids. Each
// id was sent once by the load, so its record is that command's. It waits
// until every such id has a record that is no longer queued (refused, or
// further: a 503 whose command was taken all the same), so an id the
// ledger has not written yet is not taken for a non-ghost; what is still
// queued at the deadline is counted, and an id with no record then fails
// the test (the copy always reaches the events queue, so it must have one).
func (c *chaosRun) ghosts(t *testing.T) int {
	t.Helper()
	httpc := &http.Client{Timeout: 10 * time.Second}
	defer httpc.CloseIdleConnections()
	var ids []string
	c.refusedIDs.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	deadline := time.Now().Add(30 * time.Second) // the ledger writes within milliseconds
	for {
		queued, unknown := 0, 0
		for _, id := range ids {
			switch c.recordStatus(httpc, id) {
			case "queued":
				queued++
			case "":
				unknown++
			}
		}
		if queued+unknown == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			if unknown > 0 {
				t.Errorf("%d of %d refused commands have no record after 30s", unknown, len(ids))
			}
			return queued
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// recordStatus is the status GET /v1/commands/{id} gives, or "" when it
// gives none (no record yet, or an error).
func (c *chaosRun) recordStatus(httpc *http.Client, id string) string {
	req, _ := http.NewRequest(http.MethodGet, c.base()+"/v1/commands/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+c.p.client.token)
	res, err := httpc.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var rec struct {
		Status string `json:"status"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&rec) != nil {
		return ""
	}
	return rec.Status
}

// count fills the row's counts: of the accepted ids, those with a result
// over MQTT (seen), over HTTP only (fetched), dead-lettered, or lost.
func (row *chaosRow) count(ids map[string]bool, seen map[string]int, codes map[string]contracts.Code, fetched map[string][]byte, dead map[string]bool) {
	row.delivered, row.viaMQTT, row.httpOnly, row.dups, row.errorCodes, row.dead, row.lost = 0, 0, 0, 0, 0, len(dead), 0
	for id := range ids {
		_, overHTTP := fetched[id]
		switch n := seen[id]; {
		case n > 0:
			row.delivered++
			row.viaMQTT++
			row.dups += n - 1
		case overHTTP:
			row.delivered++
			row.httpOnly++
		case !dead[id]:
			row.lost++
		}
		if _, isErr := codes[id]; isErr {
			row.errorCodes++
		}
	}
}

// load submits total commands at sc.rate, each to one of the fleet's devices.
func (c *chaosRun) load(sc scenario, total int, sent *atomic.Int64, accepted *sync.Map, refused *atomic.Int64, refusals *latencies) {
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer httpc.CloseIdleConnections()
	ticker := time.NewTicker(time.Second / time.Duration(sc.rate))
	defer ticker.Stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range total {
		<-ticker.C
		sem <- struct{}{}
		id := fmt.Sprintf("c%d", i)
		device := c.fleet.ids[i%len(c.fleet.ids)]
		wg.Go(func() {
			defer func() { <-sem }()
			body := `{"jsonrpc":"2.0","method":"echo","params":{"n":` + strconv.Itoa(i) + `},"id":"` + id + `"}`
			began := time.Now()
			status := c.post(httpc, device, body, sc.timeout)
			if status == http.StatusAccepted {
				accepted.Store(id, true)
			} else {
				c.refusedIDs.Store(id, true)
				refused.Add(1)
				refusals.add(time.Since(began))
			}
		})
		sent.Add(1)
	}
	wg.Wait()
}

// post submits one command; 0 when nothing answered.
func (c *chaosRun) post(httpc *http.Client, device, body, timeout string) int {
	status, _ := c.postRead(httpc, device, body, timeout)
	return status
}

// postRead is post that also returns the answer's body (or the error).
func (c *chaosRun) postRead(httpc *http.Client, device, body, timeout string) (int, string) {
	req, err := http.NewRequest(http.MethodPost, c.base()+"/v1/devices/"+device+"/commands", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+c.p.client.token)
	req.Header.Set("Cafe-Timeout", timeout)
	res, err := httpc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, string(out)
}

// probe measures recovery: from end, it submits a probe command until the
// cashier takes it, then waits for its result.
func (c *chaosRun) probe(t *testing.T, end time.Time) time.Duration {
	t.Helper()
	httpc := &http.Client{Timeout: 5 * time.Second}
	defer httpc.CloseIdleConnections()
	id := "probe-" + strconv.FormatInt(end.UnixNano(), 36)
	device := c.fleet.ids[0]
	var last string
	brokertest.Eventually(t, 3*time.Minute, "the cashier never took the probe", func() bool {
		status, body := c.postRead(httpc, device, `{"jsonrpc":"2.0","method":"echo","id":"`+id+`"}`, "60s")
		if got := fmt.Sprintf("%d %s", status, body); got != last {
			t.Logf("probe %s: %s", id, got)
			last = got
		}
		return status == http.StatusAccepted
	})
	brokertest.Eventually(t, 3*time.Minute, "the probe was never answered", func() bool { return c.app.has(id) })
	return c.app.firstAt(id).Sub(end)
}

// garbled is the id the broken commands poison publishes in the cashier's
// name give in their headers: the app is told they were dead-lettered.
const garbled = "garbled"

// poison publishes n messages the barista must set aside, straight into
// the commands exchange, while the load flows: broken ones in the
// cashier's name, and well-formed ones from a user that is not a cashier.
func (c *chaosRun) poison(t *testing.T, n int) {
	t.Helper()
	cashier := brokertest.Publisher(t, c.p.top, identity.Cashier)
	intruder := brokertest.Publisher(t, c.p.top, identity.Admin)
	good := contracts.CommandMeta{ClientID: c.p.client.id, DeviceID: c.fleet.ids[0], MsgID: `"` + garbled + `"`, Deadline: time.Now().Add(time.Minute), AcceptedAt: time.Now()}
	forged := good
	forged.MsgID = `"forged"`
	kinds := []struct {
		pub *amqplink.Publisher
		m   amqp.Publishing
	}{
		{cashier, amqp.Publishing{Body: []byte("garbage"), Headers: good.Headers()}},
		{cashier, amqp.Publishing{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":"p"}`)}},
		{cashier, amqp.Publishing{Body: []byte(`{"jsonrpc":"2.0","method":"echo"}`), Headers: good.Headers()}}, // header has an id, the body none
		{intruder, amqp.Publishing{Body: []byte(`{"jsonrpc":"2.0","method":"echo","id":"forged"}`), Headers: forged.Headers()}},
	}
	for i := range n {
		k := kinds[i%len(kinds)]
		m := k.m
		m.MessageId = contracts.NewCommandID()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := k.pub.Publish(ctx, c.p.top.CommandsExchange(), contracts.RoutingKeyCommand, m); err != nil {
			t.Errorf("poison %d: %v", i, err)
		}
		cancel()
	}
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
}

// p99 is the 99th percentile, 0 when there is nothing.
func (l *latencies) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0
	}
	s := slices.Clone(l.d)
	slices.Sort(s)
	return s[(len(s)*99)/100]
}

// restartAll stops cashier, baristas and caller with SIGTERM, then starts
// new ones on the same prefix.
func (c *chaosRun) restartAll(t *testing.T) {
	t.Helper()
	all := append(append([]*service{c.p.cashier}, c.p.baristas...), c.p.callers...)
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Go(func() { s.signal(t, syscall.SIGTERM) })
	}
	wg.Wait()
	for _, s := range all {
		if code := s.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", s.name, code)
		}
	}
	for _, s := range all {
		s.launch(t, s.name)
	}
	c.cashierMu.Lock()
	c.cashierBase = "http://" + c.p.cashier.addr
	c.cashierMu.Unlock()
	for _, s := range all {
		s.waitReady(t)
	}
}

// deadLettered returns the accepted ids found in the dead-letter queue, and
// how many messages it holds in all. It reads without removing (unacked
// gets, then the channel closes).
func (c *chaosRun) deadLettered(t *testing.T, ids map[string]bool) (map[string]bool, int) {
	t.Helper()
	out := map[string]bool{}
	conn, err := amqplink.Dial(amqplink.Config{URL: brokertest.AMQPURL()})
	if err != nil {
		return out, 0 // the broker may be restarting; counted on the next round
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return out, 0
	}
	defer ch.Close()
	total := 0
	for {
		d, ok, err := ch.Get(c.p.top.DeadQueue(), false)
		if err != nil || !ok {
			return out, total
		}
		total++
		msgID := contracts.ReadMeta(d.Headers).MsgID
		if id := strings.Trim(msgID, `"`); ids[id] {
			out[id] = true
		}
	}
}

// waitDrained returns once the commands and results queues have had no
// message ready for a second: the workers hold at most their prefetch
// (what they finish soon after).
func (p *pipeline) waitDrained(t *testing.T, within time.Duration) {
	t.Helper()
	empty := func() bool {
		return brokertest.QueueDepth(t, p.top.CommandsQueue()) == 0 && brokertest.QueueDepth(t, p.top.ResultsQueue()) == 0
	}
	brokertest.Eventually(t, within, "the pipeline never drained", func() bool {
		if !empty() {
			return false
		}
		time.Sleep(time.Second) // and still empty a second later
		return empty()
	})
}

// restartDevices starts the fleet f again with the same devices and
// logins (a restarted fleet without them is refused by Mosquitto).
func (p *pipeline) restartDevices(t testing.TB, f *fleet, flags ...string) *fleet {
	t.Helper()
	g := &fleet{ids: f.ids, first: f.first, secrets: f.secrets}
	p.runFleet(t, "devicesim (again)", g, flags...)
	return g
}

// persistentApp is an app that keeps its MQTT session (clean session false,
// a fixed client id), so results published while it is disconnected (say,
// while Mosquitto restarts) wait for it.
type persistentApp struct {
	mu    sync.Mutex
	first map[string]time.Time // id → arrival of its first result
	seen  map[string]int       // id → results received
	codes map[string]contracts.Code
	raw   map[string][][]byte // id → the bytes of each result received
	wrong int                 // results whose echo is not of their id's command (see echoOf)

	session appclient.Session
	stop    func() // ends the MQTT link and forgets its session
}

func newPersistentApp(t testing.TB, base string, c client) *persistentApp {
	t.Helper()
	a := &persistentApp{first: map[string]time.Time{}, seen: map[string]int{}, codes: map[string]contracts.Code{}, raw: map[string][][]byte{}}
	a.session = (&app{base: base, client: c, http: &http.Client{Timeout: 15 * time.Second}}).session(t)
	a.stop = subscribeResults(t, a.session, false, a.onResult)
	return a
}

// away disconnects the app for d, forgetting its MQTT session: what is
// published for it meanwhile is dropped by the broker, and comes back only
// over HTTP. It then subscribes again, on a new session.
func (a *persistentApp) away(t *testing.T, d time.Duration) {
	t.Helper()
	a.stop()
	forgetMQTTSession(t, a.session.ClientID)
	time.Sleep(d) // the absence itself
	a.stop = subscribeResults(t, a.session, false, a.onResult)
}

func (a *persistentApp) onResult(_ string, payload []byte) {
	var r contracts.Response
	if err := json.Unmarshal(payload, &r); err != nil {
		return
	}
	id := strings.Trim(string(r.ID), `"`)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.seen[id] == 0 {
		a.first[id] = time.Now()
	}
	a.seen[id]++
	a.raw[id] = append(a.raw[id], slices.Clone(payload))
	if r.Error != nil {
		a.codes[id] = r.Error.Code
	} else if n, ok := echoOf(r.Result); ok && "c"+strconv.Itoa(n) != id {
		a.wrong++
	}
}

// echoOf is the n of an echo result {"n": n} (load sends command cN with
// params {"n": N}, which the device echoes).
func echoOf(result []byte) (int, bool) {
	var p struct {
		N *int `json:"n"`
	}
	if json.Unmarshal(result, &p) != nil || p.N == nil {
		return 0, false
	}
	return *p.N, true
}

func (a *persistentApp) misattributed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wrong
}

func (a *persistentApp) has(id string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[id] > 0
}

func (a *persistentApp) firstAt(id string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first[id]
}

// snapshot copies, at one moment, how many results each id received and
// the error code of those that were errors.
func (a *persistentApp) snapshot() (map[string]int, map[string]contracts.Code) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.seen), maps.Clone(a.codes)
}

// pushed reports whether the app got body over MQTT as a result for id,
// and whether it got any result for id at all.
func (a *persistentApp) pushed(id string, body []byte) (same, any bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, raw := range a.raw[id] {
		if string(raw) == string(body) {
			return true, true
		}
	}
	return false, len(a.raw[id]) > 0
}

// fetchedResults is what the app read over GET /v1/results, page after
// page from a time, following each page's cursor.
type fetchedResults struct {
	after    string            // the next page's cursor (an RFC 3339 time at first)
	bodies   map[string][]byte // the app's id → its result's bytes
	commands map[string]bool   // command ids read (ids may repeat: the poison's all say "garbled")
}

func newFetchedResults(since time.Time) *fetchedResults {
	return &fetchedResults{after: since.UTC().Format(time.RFC3339Nano), bodies: map[string][]byte{}, commands: map[string]bool{}}
}

// fetch reads the pages that are there now. A cashier that is down (a
// restart scenario) is read again on the next round.
func (f *fetchedResults) fetch(t *testing.T, base, token string) {
	t.Helper()
	httpc := &http.Client{Timeout: 10 * time.Second}
	defer httpc.CloseIdleConnections()
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/results?limit=1000&after="+url.QueryEscape(f.after), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := httpc.Do(req)
		if err != nil {
			return
		}
		var p struct {
			Results []struct {
				ID        json.RawMessage `json:"id"`
				CommandID string          `json:"command_id"`
				Result    json.RawMessage `json:"result"`
			} `json:"results"`
			Next string `json:"next"`
		}
		err = json.NewDecoder(res.Body).Decode(&p)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || err != nil {
			return
		}
		for _, r := range p.Results {
			if f.commands[r.CommandID] {
				t.Errorf("GET /v1/results gave command %s (id %s) twice (cursor %s)", r.CommandID, r.ID, f.after)
			}
			f.commands[r.CommandID] = true
			f.bodies[strings.Trim(string(r.ID), `"`)] = slices.Clone([]byte(r.Result))
		}
		if len(p.Results) == 0 || p.Next == "" {
			return
		}
		f.after = p.Next
	}
}

func (f *fetchedResults) snapshot() map[string][]byte { return maps.Clone(f.bodies) }

// compare checks that every result read over HTTP whose id also came over
// MQTT is one of the results pushed, byte for byte.
func (f *fetchedResults) compare(t *testing.T, a *persistentApp) {
	t.Helper()
	for id, body := range f.bodies {
		if same, any := a.pushed(id, body); any && !same {
			t.Errorf("%s: GET /v1/results gave %s, not what MQTT brought", id, body)
		}
	}
}

func brokerScript(t *testing.T, command string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join("..", "..", "..", "deploy", "brokers.sh"), command)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/brokers.sh %s: %v\n%s", command, err, out)
	}
}

func rabbitmqctl(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("rabbitmqctl", args...).CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// chaosTable renders the rows as a Markdown table.
func chaosTable(rows []chaosRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario | accepted (202) | refused | refusal p99 | refused, delivered late | delivered | via MQTT | via HTTP only | dead-lettered | lost | duplicates | misattributed | error results | dead-letter queue | fault lasted | recovery | fault |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %d | %d | %d | %d | %d | **%d** | %d | **%d** | %d | %d | %s | %s | %s |\n", r.name, r.accepted, r.refused,
			dash(r.refusedP99), r.late, r.delivered, r.viaMQTT, r.httpOnly, r.dead, r.lost, r.dups, r.misattributed, r.errorCodes, r.deadTotal,
			r.faultTook.Round(10*time.Millisecond), r.recovery.Round(10*time.Millisecond), r.note)
	}
	return b.String()
}

func dash(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	return d.Round(time.Millisecond).String()
}
