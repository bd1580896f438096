//go:build fleet

package e2e

// The fleet test (task fleet): a large simulated fleet on the MQTT broker
// tier (deploy/mosquitto/tier.sh: a core and -fleet-edges edges), one
// devicesim process per edge (a process may hold only ulimit -n open
// files, and every device is a TCP connection), a cashier, baristas and a
// caller on the core, and an app sending commands to random devices at a
// steady rate. It checks that every accepted command is answered, that
// every barista tracks the presence of every device, and it measures the
// memory of each process: brokers, services and simulators (per device).
// It takes minutes and most of this machine, so it is behind the build
// tag fleet and not part of CI; its figures are in the README ("Fleet
// test").
//
// The tier is the test's own (its folder, ports apart from the default
// tier's), with every device's login written before the brokers start
// (the bulk path of deploy/README.md, "Logins for a large fleet"), and it
// is purged at the end.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

var (
	fleetDevices   = flag.Int("fleet-devices", 60000, "simulated devices, spread evenly over the edges")
	fleetEdges     = flag.Int("fleet-edges", 4, "edge brokers (one devicesim process each)")
	fleetRate      = flag.Float64("fleet-rate", 200, "commands per second, to random devices")
	fleetDuration  = flag.Duration("fleet-duration", time.Minute, "how long commands are sent")
	fleetBaristas  = flag.Int("fleet-baristas", 2, "baristas on the core")
	fleetKeepAlive = flag.Duration("fleet-keepalive", 2*time.Minute, "the devices' MQTT keep-alive")
	fleetCorePort  = flag.Int("fleet-core-port", 29893, "the test tier's core port; the edges take -fleet-edge-port and up")
	fleetEdgePort  = flag.Int("fleet-edge-port", 29901, "the test tier's first edge port")
	fleetOut       = flag.String("fleet-out", "", "also write the fleet table (Markdown) to this file")
)

// Bounds of the fleet test's waits.
const (
	fleetOnlineWait = 10 * time.Minute // every device connected, announced and known to every barista
	fleetDrain      = time.Minute      // results after the last command
	fleetStopWait   = 3 * time.Minute  // a fleetSim's graceful stop (every device's offline presence)
)

func TestFleet(t *testing.T) {
	n, edges := *fleetDevices, *fleetEdges
	if n < edges || edges < 1 {
		t.Fatalf("-fleet-devices %d over -fleet-edges %d: want at least one device per edge", n, edges)
	}
	prefix := brokertest.ID(t, "fl")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i+1)
	}
	c := client{id: prefix + "-app", token: randomToken()}
	registry := writeFleetRegistry(t, c, prefix, ids)

	started := time.Now()
	tier := startFleetTier(t, registry, edges)
	t.Logf("tier up in %v: core %s, edges %s", time.Since(started).Round(time.Second), tier.core, strings.Join(tier.edges, " "))

	top := contracts.DefaultTopology()
	top.Prefix = prefix
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	brokertest.Declare(t, top)
	env := []string{"CAFE_AMQP_PREFIX=" + top.Prefix, "CAFE_MQTT_URL=" + tier.core, "CAFE_SESSION_MQTT_URL=" + tier.core}
	cashier := startService(t, "cashier", "cashier", append([]string{"CAFE_CLIENTS_FILE=" + registry}, env...))
	var baristas []*service
	for i := range *fleetBaristas {
		baristas = append(baristas, startService(t, fmt.Sprintf("barista#%d", i+1), "barista",
			append([]string{"CAFE_BARISTA_ROUTE=" + brokertest.ID(t, "b")}, env...)))
	}
	caller := startService(t, "caller", "caller", env)
	for _, s := range append([]*service{cashier, caller}, baristas...) {
		s.waitReady(t)
	}

	started = time.Now()
	sims := startFleetSims(t, tier, prefix, n)
	online := time.Since(started)
	for _, b := range baristas {
		brokertest.Eventually(t, fleetOnlineWait, b.name+" never knew every device's presence", func() bool {
			return b.metric(t, "cafe_barista_devices_known") >= float64(n)
		})
	}
	presence := time.Since(started)
	t.Logf("%d devices online in %v, known to every barista after %v", n, online.Round(time.Second), presence.Round(time.Second))

	a := newApp(t, cashier.base(), c)
	sent := sendLoad(t, a, ids, *fleetRate, *fleetDuration)
	out := sent.settle(a, fleetDrain)

	rows := []fleetMem{}
	for _, s := range append(append([]*service{cashier}, baristas...), caller) {
		rows = append(rows, fleetMemOf(t, s.name, s.cmd.Process.Pid, 0))
	}
	for _, b := range tier.brokers {
		rows = append(rows, fleetMemOf(t, "mosquitto "+b.name, b.pid(t), b.devices))
	}
	for _, s := range sims {
		rows = append(rows, fleetMemOf(t, "devicesim "+s.name, s.cmd.Process.Pid, s.count))
	}
	known := make([]float64, len(baristas))
	for i, b := range baristas {
		known[i] = b.metric(t, "cafe_barista_devices_known")
	}
	for _, s := range sims {
		s.stop(t, fleetStopWait)
	}

	table := fleetTable(n, edges, online, presence, known, sent, out, rows)
	t.Log("\n" + table)
	if *fleetOut != "" {
		if err := os.WriteFile(*fleetOut, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
	if out.lost != 0 || out.answered != sent.accepted.Load() || out.errors != 0 || sent.refused.Load() != 0 {
		t.Errorf("sent %d, accepted %d, refused %d, answered %d (%d with an error: %v), lost %d: want every command accepted and answered without error",
			sent.sent.Load(), sent.accepted.Load(), sent.refused.Load(), out.answered, out.errors, out.errorKinds, out.lost)
	}
	for i, k := range known {
		if k != float64(n) {
			t.Errorf("%s knew %v devices' presence, want %d", baristas[i].name, k, n)
		}
	}
}

// writeFleetRegistry writes a registry with app c, entitled to every
// device of the prefix at a rate well above the test's, and every device
// with its derived secret (generation 1), so that the tier renders each
// broker's logins from it in one go.
func writeFleetRegistry(t *testing.T, c client, prefix string, ids []string) string {
	t.Helper()
	var b strings.Builder
	sum := sha256.Sum256([]byte(c.token))
	fmt.Fprintf(&b, "clients:\n  - id: %s\n    token_sha256: %s\n    devices: [%q]\n    rate: %g\n    burst: %d\n",
		c.id, hex.EncodeToString(sum[:]), prefix+"-*", 10*max(*fleetRate, 100), int(10*max(*fleetRate, 100)))
	b.WriteString("devices:\n")
	key := brokertest.Key()
	for _, id := range ids {
		s := identity.SHA256(key.DeviceSecret(id, 1))
		fmt.Fprintf(&b, "  - id: %s\n    secret_sha256: %s\n    generation: 1\n", id, hex.EncodeToString(s[:]))
	}
	name := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// tier is the test's MQTT broker tier.
type fleetTier struct {
	dir     string
	core    string
	edges   []string
	brokers []fleetBroker
}

type fleetBroker struct {
	name    string
	dir     string
	devices int // the devices connected to it
}

// pid is the broker's process id, from its pid file.
func (b fleetBroker) pid(t testing.TB) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(b.dir, "mosquitto.pid"))
	if err != nil {
		t.Fatalf("%s: %v", b.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("%s's pid file: %v", b.name, err)
	}
	return pid
}

// startFleetTier starts a core and edges in a folder of the test's own, the
// logins of registry written before the brokers start, and purges it when
// the test ends.
func startFleetTier(t *testing.T, registry string, edges int) *fleetTier {
	t.Helper()
	dir, err := os.MkdirTemp("", "cafe-fleet-tier-")
	if err != nil {
		t.Fatal(err)
	}
	tr := &fleetTier{dir: dir}
	script := filepath.Join(fleetRepoRoot(t), "deploy", "mosquitto", "tier.sh")
	tierEnv := append(os.Environ(), "CAFE_TIER_DIR="+dir, "CAFE_TIER_EDGES="+strconv.Itoa(edges),
		"CAFE_TIER_CORE_PORT="+strconv.Itoa(*fleetCorePort), "CAFE_TIER_EDGE_PORT="+strconv.Itoa(*fleetEdgePort),
		"CAFE_CLIENTS_FILE="+registry, "CAFE_TIER_RECONCILE=0", "CAFE_TIER_BRIDGE_TIMEOUT=60")
	t.Cleanup(func() {
		cmd := exec.Command("bash", script, "purge")
		cmd.Env = tierEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("tier.sh purge: %v\n%s", err, out)
		}
	})
	cmd := exec.Command("bash", script, "up")
	cmd.Env = tierEnv
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tier.sh up: %v\n%s", err, out)
	}
	env, err := os.ReadFile(filepath.Join(dir, "tier.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "CAFE_TIER_CORE_URL="); ok {
			tr.core = v
		}
		if v, ok := strings.CutPrefix(line, "CAFE_TIER_EDGE_URLS="); ok {
			tr.edges = strings.Split(v, ",")
		}
	}
	if tr.core == "" || len(tr.edges) != edges {
		t.Fatalf("tier.env %q: want the core's URL and %d edges'", env, edges)
	}
	tr.brokers = append(tr.brokers, fleetBroker{name: "core", dir: filepath.Join(dir, "core")})
	for i := range edges {
		name := fmt.Sprintf("edge-%d", i+1)
		tr.brokers = append(tr.brokers, fleetBroker{name: name, dir: filepath.Join(dir, name)})
	}
	return tr
}

// fleetRepoRoot is the repository's folder (this package is cmd/internal/e2e).
func fleetRepoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// fleetSim is one devicesim process, on one edge.
type fleetSim struct {
	*proc
	count int
}

// startFleetSims starts one devicesim per edge, the devices numbered in
// blocks (edge 1 has the first n/edges), and waits until every one says
// its devices are online.
func startFleetSims(t *testing.T, tr *fleetTier, prefix string, n int) []*fleetSim {
	t.Helper()
	var sims []*fleetSim
	first := 1
	for i, edge := range tr.edges {
		count := n / len(tr.edges)
		if i < n%len(tr.edges) {
			count++
		}
		tr.brokers[i+1].devices = count
		args := []string{"--mqtt-url", edge, "--pattern", prefix + "-%d", "--first", strconv.Itoa(first), "--count", strconv.Itoa(count),
			"--keepalive", fleetKeepAlive.String(), "--secrets-file", fleetSecrets(t, prefix, first, count),
			"--stats-file", filepath.Join(t.TempDir(), "stats.json"), "--log-level", "warn"}
		sims = append(sims, &fleetSim{proc: start(t, fmt.Sprintf("edge-%d", i+1), "devicesim", nil, args...), count: count})
		first += count
	}
	for _, s := range sims {
		s.waitOutput(t, fmt.Sprintf("%d devices online", s.count), fleetOnlineWait)
	}
	return sims
}

// fleetSecrets writes the "ID SECRET" file of devices first..first+count-1.
func fleetSecrets(t *testing.T, prefix string, first, count int) string {
	t.Helper()
	var b strings.Builder
	key := brokertest.Key()
	for i := first; i < first+count; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		fmt.Fprintf(&b, "%s %s\n", id, key.DeviceSecret(id, 1))
	}
	name := filepath.Join(t.TempDir(), "secrets.txt")
	if err := os.WriteFile(name, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// fleetLoad is what the app sent.
type fleetLoad struct {
	sent, accepted, refused atomic.Int64
	ids                     sync.Map // command id → true, for those accepted
	took                    time.Duration
	mu                      sync.Mutex
	refusals                map[string]int
}

// sendLoad submits one echo command to a random device every 1/rate for
// duration, from a few senders, keeping to the schedule.
func sendLoad(t *testing.T, a *app, ids []string, rate float64, duration time.Duration) *fleetLoad {
	t.Helper()
	l := &fleetLoad{refusals: map[string]int{}}
	total := int(rate * duration.Seconds())
	slots := make(chan int, total)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for seq := range slots {
				l.submit(a, ids[rand.N(len(ids))], seq)
			}
		})
	}
	start := time.Now()
	for seq := range total {
		time.Sleep(time.Until(start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))))
		slots <- seq
	}
	close(slots)
	wg.Wait()
	l.took = time.Since(start)
	return l
}

func (l *fleetLoad) submit(a *app, device string, seq int) {
	id := "f" + strconv.Itoa(seq)
	body := `{"jsonrpc":"2.0","id":"` + id + `","method":"echo","params":[` + strconv.Itoa(seq) + `]}`
	l.sent.Add(1)
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/devices/"+device+"/commands", strings.NewReader(body))
	if err != nil {
		l.refuse(err.Error())
		return
	}
	req.Header.Set("Authorization", "Bearer "+a.client.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cafe-Timeout", "30s")
	res, err := a.http.Do(req)
	if err != nil {
		l.refuse("transport: " + err.Error())
		return
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		l.refuse("http " + strconv.Itoa(res.StatusCode))
		return
	}
	l.accepted.Add(1)
	l.ids.Store(`"`+id+`"`, true)
}

func (l *fleetLoad) refuse(kind string) {
	l.refused.Add(1)
	l.mu.Lock()
	l.refusals[kind]++
	l.mu.Unlock()
}

// fleetOutcome is what came back.
type fleetOutcome struct {
	answered, errors, duplicates, lost int64
	errorKinds                         map[string]int
}

// settle waits up to drain for a result to every accepted command, then
// counts them.
func (l *fleetLoad) settle(a *app, drain time.Duration) fleetOutcome {
	deadline := time.Now().Add(drain)
	for {
		o := l.count(a)
		if o.answered == l.accepted.Load() || time.Now().After(deadline) {
			return o
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *fleetLoad) count(a *app) fleetOutcome {
	o := fleetOutcome{errorKinds: map[string]int{}}
	seen := map[string]bool{}
	for _, r := range a.all() {
		id := string(r.resp.ID)
		if _, ok := l.ids.Load(id); !ok {
			continue
		}
		if seen[id] {
			o.duplicates++
			continue
		}
		seen[id] = true
		o.answered++
		if r.resp.Error != nil {
			o.errors++
			o.errorKinds[fmt.Sprintf("%d %s", r.resp.Error.Code, r.resp.Error.Message)]++
		}
	}
	o.lost = l.accepted.Load() - o.answered
	return o
}

// fleetMem is one process's memory.
type fleetMem struct {
	name      string
	rss, peak int64 // bytes: VmRSS now, VmHWM
	devices   int   // devices it holds (brokers, simulators); 0: none
}

// fleetMemOf reads a process's resident set from /proc.
func fleetMemOf(t testing.TB, name string, pid, devices int) fleetMem {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("%s (pid %d): %v", name, pid, err)
	}
	r := fleetMem{name: name, devices: devices}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		field, value, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch field {
		case "VmRSS":
			r.rss = kb << 10
		case "VmHWM":
			r.peak = kb << 10
		}
	}
	return r
}

// fleetTable is the run's figures as Markdown.
func fleetTable(n, edges int, online, presence time.Duration, known []float64, l *fleetLoad, o fleetOutcome, rows []fleetMem) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| devices | edges | online after | known to every barista after | sent | accepted | answered | errors | lost | duplicates | rate sent | presence tracked |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	knownS := make([]string, len(known))
	for i, k := range known {
		knownS[i] = strconv.FormatFloat(k, 'f', 0, 64)
	}
	fmt.Fprintf(&b, "| %d | %d | %v | %v | %d | %d | %d | %d | %d | %d | %.1f/s over %v | %s |\n\n",
		n, edges, online.Round(100*time.Millisecond), presence.Round(100*time.Millisecond), l.sent.Load(), l.accepted.Load(), o.answered, o.errors,
		o.lost, o.duplicates, float64(l.sent.Load())/l.took.Seconds(), l.took.Round(time.Second), strings.Join(knownS, ", "))
	fmt.Fprintf(&b, "| process | devices | RSS | peak RSS | RSS per device |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		per := "–"
		if r.devices > 0 {
			per = fmt.Sprintf("%.1f KB", float64(r.rss)/float64(r.devices)/1000)
		}
		devices := "–"
		if r.devices > 0 {
			devices = strconv.Itoa(r.devices)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f MB | %.1f MB | %s |\n", r.name, devices, float64(r.rss)/1e6, float64(r.peak)/1e6, per)
	}
	if len(l.refusals) > 0 || len(o.errorKinds) > 0 {
		kinds, _ := json.Marshal(map[string]any{"refused": l.refusals, "errors": o.errorKinds})
		fmt.Fprintf(&b, "\nrefusals and errors: %s\n", kinds)
	}
	return b.String()
}
