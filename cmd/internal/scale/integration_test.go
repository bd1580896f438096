package scale_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/scale"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// baristaBin and callerBin are the real binaries, built by TestMain.
var baristaBin, callerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cafe-scale-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "cafe/cmd/barista", "cafe/cmd/caller").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scale: go build cafe/cmd/barista: %v\n%s", err, out)
		os.Exit(1)
	}
	baristaBin, callerBin = filepath.Join(dir, "barista"), filepath.Join(dir, "caller")
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// rig is a test pipeline with a supervisor of real baristas and one
// simulated device.
type rig struct {
	t      *testing.T
	top    contracts.Topology
	device string
	pub    *amqplink.Publisher
	sup    *scale.Supervisor
	reg    *prometheus.Registry
	stop   func()
}

// newRig starts a device answering after latency, and a supervisor of
// baristas each handling one command at a time.
func newRig(t *testing.T, p scale.Policy, latency time.Duration) *rig {
	t.Helper()
	top := brokertest.Topology(t)
	r := &rig{t: t, top: top, pub: brokertest.Publisher(t, top, identity.Cashier), reg: prometheus.NewRegistry()}
	r.device = startDevice(t, latency)
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ops), Topology: top, Name: "test-scale", Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, link)
	cfg := scale.Config{Role: scale.RoleBarista, Binary: baristaBin, Policy: p, Interval: 200 * time.Millisecond, StopGrace: 10 * time.Second,
		Env: childEnv(), Set: map[string]string{"CAFE_AMQP_URL": brokertest.AMQPBase(), "CAFE_MQTT_URL": brokertest.MQTTBase(), "CAFE_AMQP_PREFIX": top.Prefix}}
	r.sup, err = scale.New(cfg, &scale.QueueSource{Link: link, Queue: top.CommandsQueue()}, r.reg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	r.stop = brokertest.Start(t, r.sup.Run)
	return r
}

// childEnv is this environment without CAFE_* settings, with the
// machine's auth key (each barista logs in as cafe-barista) and one
// command at a time per barista, handed back within 3s of SIGTERM.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAFE_") {
			env = append(env, kv)
		}
	}
	return append(env, "CAFE_AUTH_KEY_FILE="+brokertest.KeyFile(), "CAFE_BARISTA_CONCURRENCY=1", "CAFE_BARISTA_GRACE=3s", "CAFE_LOG_LEVEL=warn")
}

// testLog logs to the test's log.
func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startDevice runs one simulated device, online until the test ends.
func startDevice(t *testing.T, latency time.Duration) string {
	t.Helper()
	f, err := devicesim.New(devicesim.Config{MQTTURL: brokertest.MQTTURL(), Count: 1, Pattern: brokertest.ID(t, "d") + "-%d", First: 1,
		Latency: latency, MaxBackoff: 200 * time.Millisecond}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, f.Run)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitOnline(ctx); err != nil {
		t.Fatal(err)
	}
	return f.IDs()[0]
}

// send queues commands first..last as the cashier would (JSON-RPC ids
// first..last), each with a deadline of a minute.
func (r *rig) send(first, last int) {
	r.t.Helper()
	for i := first; i <= last; i++ {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":{"n":%d},"id":%d}`, i, i)
		now := time.Now()
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: r.device,
			MsgID: fmt.Sprint(i), Deadline: now.Add(time.Minute), AcceptedAt: now}
		brokertest.Publish(r.t, r.pub, r.top.CommandsExchange(), contracts.RoutingKeyCommand,
			amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body)})
	}
}

// results takes every result in the results queue and returns, by
// JSON-RPC id, how many came and how many of them were errors.
func (r *rig) results(got map[string]int, errs *int) {
	r.t.Helper()
	conn := brokertest.Dial(r.t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		r.t.Fatal(err)
	}
	defer ch.Close()
	for {
		d, ok, err := ch.Get(r.top.ResultsQueue(), true)
		if err != nil {
			r.t.Fatal(err)
		}
		if !ok {
			return
		}
		var resp contracts.Response
		if err := json.Unmarshal(d.Body, &resp); err != nil {
			r.t.Fatalf("result %q: %v", d.Body, err)
		}
		got[string(resp.ID)]++
		if resp.Error != nil {
			*errs++
			r.t.Errorf("result %s is an error: %+v", resp.ID, resp.Error)
		}
	}
}

// watchCount samples the running count every 50ms until stop, and
// returns the smallest and largest seen, and the distinct values in order.
func (r *rig) watchCount() (stop func() (lo, hi int, seq []int)) {
	var (
		mu     sync.Mutex
		lo, hi = 1 << 30, 0
		seq    []int
		done   = make(chan struct{})
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			n := len(r.sup.PIDs())
			mu.Lock()
			lo, hi = min(lo, n), max(hi, n)
			if len(seq) == 0 || seq[len(seq)-1] != n {
				seq = append(seq, n)
			}
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	return func() (int, int, []int) {
		close(done)
		wg.Wait()
		if n := len(r.sup.PIDs()); seq[len(seq)-1] != n { // the last change, if the sampler missed it
			lo, hi, seq = min(lo, n), max(hi, n), append(seq, n)
		}
		return lo, hi, seq
	}
}

// waitConsumers waits until n baristas consume the commands queue.
func (r *rig) waitConsumers(n int, within time.Duration) {
	r.t.Helper()
	brokertest.Eventually(r.t, within, fmt.Sprintf("never %d consumers", n), func() bool {
		conn := brokertest.Dial(r.t)
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return false
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(r.top.CommandsQueue(), true, false, false, false, nil)
		return err == nil && q.Consumers == n
	})
}

func (r *rig) waitRunning(n int, within time.Duration) {
	r.t.Helper()
	brokertest.Eventually(r.t, within, fmt.Sprintf("running never became %d", n), func() bool { return len(r.sup.PIDs()) == n })
}

// TestScalesUpOnBacklogDownAfterQuietAndLosesNothing: a backlog that one
// barista would take seconds to clear brings up more at once (never more
// than --max); once it is gone they are stopped one at a time after the
// quiet period (never below --min), while commands still arrive; every
// command is answered, none as an error.
func TestScalesUpOnBacklogDownAfterQuietAndLosesNothing(t *testing.T) {
	p := scale.Policy{Min: 1, Max: 3, TargetDrain: time.Second, Quiet: 1500 * time.Millisecond}
	r := newRig(t, p, 50*time.Millisecond)
	r.waitRunning(1, 10*time.Second)
	watch := r.watchCount()
	const burst, trickle = 120, 30
	r.send(1, burst) // 120 × 50ms = 6s for one barista: over the 1s target
	r.waitRunning(3, 15*time.Second)
	brokertest.Eventually(t, 60*time.Second, "backlog never drained", func() bool { return brokertest.QueueDepth(t, r.top.CommandsQueue()) == 0 })
	for i := burst + 1; i <= burst+trickle; i++ { // commands keep coming while baristas are stopped
		r.send(i, i)
		time.Sleep(100 * time.Millisecond)
	}
	r.waitRunning(1, 30*time.Second)
	lo, hi, seq := watch()
	if lo < p.Min || hi > p.Max {
		t.Errorf("running went from %d to %d, want within %d..%d (sequence %v)", lo, hi, p.Min, p.Max, seq)
	}
	// The trickle may bring one back up on a loaded machine; what must
	// hold is that every step down is one barista, and the last 3 goes
	// down to 1 one at a time.
	for i := 1; i < len(seq); i++ {
		if seq[i] < seq[i-1]-1 {
			t.Errorf("running went %v: %d to %d at once, want down one at a time", seq, seq[i-1], seq[i])
		}
	}
	if !slices.Contains(seq, 3) || seq[len(seq)-1] != 1 {
		t.Errorf("running went %v, want up to 3 and back to 1", seq)
	}
	got, errs := map[string]int{}, 0
	brokertest.Eventually(t, 30*time.Second, "results missing", func() bool {
		r.results(got, &errs)
		return len(got) == burst+trickle
	})
	for id, n := range got {
		if n != 1 {
			t.Errorf("result %s came %d times", id, n)
		}
	}
	if v := testutil.ToFloat64(counter(t, r.reg, "down")); v < 2 {
		t.Errorf("cafe_scale_decisions_total{direction=down} = %v, want at least 2", v)
	}
}

// TestReplacesAKilledWorker: a barista killed outright is replaced, and
// the count stays at --min = --max.
func TestReplacesAKilledWorker(t *testing.T) {
	r := newRig(t, scale.Policy{Min: 2, Max: 2, TargetDrain: time.Second, Quiet: time.Second}, 0)
	r.waitRunning(2, 10*time.Second)
	r.waitConsumers(2, 30*time.Second) // kill a barista at work, not one still starting
	victim := r.sup.PIDs()[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	brokertest.Eventually(t, 10*time.Second, "the killed barista was not replaced", func() bool {
		pids := r.sup.PIDs()
		return len(pids) == 2 && !slices.Contains(pids, victim)
	})
	if v := testutil.ToFloat64(counter(t, r.reg, "replace")); v != 1 {
		t.Errorf("cafe_scale_decisions_total{direction=replace} = %v, want 1", v)
	}
	r.send(1, 5) // the replacement works
	got, errs := map[string]int{}, 0
	brokertest.Eventually(t, 30*time.Second, "results missing after the replacement", func() bool {
		r.results(got, &errs)
		return len(got) == 5
	})
}

// TestSizesCallersByTheResultsQueue: --role caller runs the real caller
// binary, as many as --min, consuming the results queue.
func TestSizesCallersByTheResultsQueue(t *testing.T) {
	top := brokertest.Topology(t)
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ops), Topology: top, Name: "test-scale", Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, link)
	cfg := scale.Config{Role: scale.RoleCaller, Binary: callerBin, Interval: 200 * time.Millisecond, StopGrace: 10 * time.Second, Env: childEnv(),
		Policy: scale.Policy{Min: 2, Max: 3, TargetDrain: time.Second, Quiet: time.Minute},
		Set:    map[string]string{"CAFE_AMQP_URL": brokertest.AMQPBase(), "CAFE_MQTT_URL": brokertest.MQTTBase(), "CAFE_AMQP_PREFIX": top.Prefix}}
	sup, err := scale.New(cfg, &scale.QueueSource{Link: link, Queue: top.ResultsQueue()}, prometheus.NewRegistry(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, sup.Run)
	brokertest.Eventually(t, 30*time.Second, "two callers never consumed the results queue", func() bool {
		st, err := link.Inspect(context.Background(), top.ResultsQueue())
		return err == nil && st.Consumers == 2
	})
}

// counter is the decisions counter of direction, from reg.
func counter(t *testing.T, reg *prometheus.Registry, direction string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cafe_scale_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
				}
			}
		}
	}
	t.Fatalf("no cafe_scale_decisions_total{direction=%q}", direction)
	return nil
}
