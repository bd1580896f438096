//go:build scalebench

package scale_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/scale"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// The step-load benchmark (task bench:scale): the barista tier under
// `cafe scale`, offered a stepped load. Commands are published as the
// cashier would (confirmed, at the scheduled rate, open loop) and results
// read from the results queue, so what is measured is the tier that scales:
// from a command's due time to its result being queued.
var (
	stepLow   = flag.Float64("step-low", 50, "commands per second before and after the step")
	stepHigh  = flag.Float64("step-high", 1500, "commands per second during the step")
	stepLead  = flag.Duration("step-lead", 20*time.Second, "time at the low rate before the step")
	stepHold  = flag.Duration("step-hold", 60*time.Second, "time at the high rate")
	stepTail  = flag.Duration("step-tail", 60*time.Second, "time at the low rate after the step")
	stepBound = flag.Duration("step-p99", 250*time.Millisecond, "p99 bound the recovery time is measured against")
	stepOut   = flag.String("step-out", "", "write the picture and figures here (default: the test's temp dir)")
)

// stepSecond is one second of the run.
type stepSecond struct {
	Offered, Done, Replicas, Backlog int
	P99                              time.Duration
	lat                              []time.Duration
}

// stepRun is the record of the run.
type stepRun struct {
	start   time.Time
	mu      sync.Mutex
	due     []time.Time // by seq
	got     []uint8     // results per seq
	expired int
	// expiredAfterDown counts expired results that came after the first
	// scale-down (downAt): the ones a scale-down could have caused.
	expiredAfterDown int
	downAt           time.Time
	peak             int
	errors           map[int64]int
	secs             []stepSecond
}

func (r *stepRun) sec(at time.Time) *stepSecond {
	i := max(0, int(at.Sub(r.start)/time.Second))
	for len(r.secs) <= i {
		r.secs = append(r.secs, stepSecond{})
	}
	return &r.secs[i]
}

// rateAt is the offered rate at elapsed time d.
func rateAt(d time.Duration) float64 {
	if d >= *stepLead && d < *stepLead+*stepHold {
		return *stepHigh
	}
	return *stepLow
}

func TestStepLoad(t *testing.T) {
	top := brokertest.Topology(t)
	total := *stepLead + *stepHold + *stepTail
	devices := startFleet(t, 100, 20*time.Millisecond)
	sup, link := startSupervisor(t, top)
	brokertest.Eventually(t, 30*time.Second, "no barista consuming", func() bool { // started is not yet consuming
		st, err := link.Inspect(context.Background(), top.CommandsQueue())
		return err == nil && st.Consumers == 1
	})
	r := &stepRun{start: time.Now().Add(100 * time.Millisecond), errors: map[int64]int{}}
	stopResults := consumeResults(t, top, r)
	stopSampling := sample(t, r, sup, link, top.CommandsQueue())
	publish(t, top, r, devices, total)
	brokertest.Eventually(t, 60*time.Second, "results missing", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return !slices.Contains(r.got, 0)
	})
	time.Sleep(*stepTail / 4) // a few more samples of the scale-down
	stopSampling()
	stopResults()
	report(t, r)
}

func startFleet(t *testing.T, n int, latency time.Duration) []string {
	t.Helper()
	f, err := devicesim.New(devicesim.Config{MQTTURL: brokertest.MQTTURL(), Count: n, Pattern: brokertest.ID(t, "d") + "-%d", First: 1,
		Latency: latency, MaxBackoff: 200 * time.Millisecond}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, f.Run)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.WaitOnline(ctx); err != nil {
		t.Fatal(err)
	}
	return f.IDs()
}

// startSupervisor sizes baristas of concurrency 16 (one barista: at most
// 16 / 20ms = 800 commands/s, below the step) between 1 and 6, by the
// management API when it answers (as cafe-admin: see
// TestManagementReadsTheRealQueue), else by ready counts.
func startSupervisor(t *testing.T, top contracts.Topology) (*scale.Supervisor, *amqplink.Link) {
	t.Helper()
	link, err := amqplink.New(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Ops), Topology: top, Name: "bench-scale", Passive: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, link)
	src := &scale.QueueSource{Link: link, Queue: top.CommandsQueue()}
	mgmt := "http://" + string(identity.Admin) + ":" + brokertest.Key().ServicePassword(identity.Admin) + "@127.0.0.1:15672/"
	if m, err := scale.NewManagement(mgmt, "/"); err == nil {
		src.Management = m
		src.OnFallback = func(err error) { t.Logf("management API: %v", err) }
	}
	env := append(childEnv(), "CAFE_BARISTA_CONCURRENCY=16", "CAFE_BARISTA_GRACE=10s") // later values win
	cfg := scale.Config{Role: scale.RoleBarista, Binary: baristaBin, Interval: time.Second, StopGrace: 15 * time.Second, Env: env,
		Policy: scale.Policy{Min: 1, Max: 6, TargetDrain: 5 * time.Second, Quiet: 15 * time.Second, Settle: 5 * time.Second},
		Set:    map[string]string{"CAFE_AMQP_URL": brokertest.AMQPBase(), "CAFE_MQTT_URL": brokertest.MQTTBase(), "CAFE_AMQP_PREFIX": top.Prefix}}
	sup, err := scale.New(cfg, src, prometheus.NewRegistry(), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Start(t, sup.Run)
	return sup, link
}

// publish sends commands on the stepped schedule for total, from 32
// publishers taking the next due slot; each command's latency counts from
// its due time, so a publisher falling behind cannot hide a stall.
func publish(t *testing.T, top contracts.Topology, r *stepRun, devices []string, total time.Duration) {
	t.Helper()
	var dues []time.Time
	for at := time.Duration(0); at < total; at += time.Duration(float64(time.Second) / rateAt(at)) {
		dues = append(dues, r.start.Add(at))
	}
	r.mu.Lock()
	r.due, r.got = dues, make([]uint8, len(dues))
	for _, d := range dues {
		r.sec(d).Offered++
	}
	r.mu.Unlock()
	pub := brokertest.Publisher(t, top, identity.Cashier)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(dues); i = int(next.Add(1) - 1) {
				time.Sleep(time.Until(dues[i]))
				sendOne(t, pub, top, i, devices[i%len(devices)], dues[i])
			}
		})
	}
	wg.Wait()
	t.Logf("published %d commands over %v", len(dues), total)
}

func sendOne(t *testing.T, pub *amqplink.Publisher, top contracts.Topology, seq int, device string, due time.Time) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":[%d],"id":%d}`, seq, seq)
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "bench", DeviceID: device,
		MsgID: strconv.Itoa(seq), Deadline: due.Add(30 * time.Second), AcceptedAt: due}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, top.CommandsExchange(), contracts.RoutingKeyCommand,
		amqp.Publishing{MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(body), DeliveryMode: amqp.Persistent}); err != nil {
		t.Errorf("publish %d: %v", seq, err)
	}
}

// consumeResults records every result: its latency from the command's due
// time, in the second it arrived, and its error code if any.
func consumeResults(t *testing.T, top contracts.Topology, r *stepRun) (stop func()) {
	t.Helper()
	conn := brokertest.Dial(t)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(top.ResultsQueue(), "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range deliveries {
			r.record(d.Body, time.Now())
		}
	}()
	return func() { conn.Close(); <-done }
}

func (r *stepRun) record(body []byte, at time.Time) {
	var resp contracts.Response
	seq, err := 0, json.Unmarshal(body, &resp)
	if err == nil {
		seq, err = strconv.Atoi(string(resp.ID))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil || seq < 0 || seq >= len(r.got) {
		r.errors[0]++
		return
	}
	r.got[seq]++
	if resp.Error != nil {
		r.errors[int64(resp.Error.Code)]++
		if resp.Error.Code == contracts.CodeExpired {
			r.expired++
			if !r.downAt.IsZero() && at.After(r.downAt) {
				r.expiredAfterDown++
			}
		}
	}
	s := r.sec(at)
	s.Done++
	s.lat = append(s.lat, at.Sub(r.due[seq]))
}

// sample records the replicas and the queue's ready count once a second.
func sample(t *testing.T, r *stepRun, sup *scale.Supervisor, link *amqplink.Link, queue string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for tick := time.NewTicker(time.Second); ; {
			select {
			case <-ctx.Done():
				tick.Stop()
				return
			case now := <-tick.C:
				st, err := link.Inspect(ctx, queue)
				r.mu.Lock()
				s := r.sec(now)
				s.Replicas = len(sup.PIDs())
				if s.Replicas < r.peak && r.downAt.IsZero() {
					r.downAt = now
				}
				r.peak = max(r.peak, s.Replicas)
				if err == nil {
					s.Backlog = st.Messages
				}
				r.mu.Unlock()
			}
		}
	}()
	return func() { cancel(); <-done }
}

// report computes the figures, logs them and draws the picture.
func report(t *testing.T, r *stepRun) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost, dup := 0, 0
	for _, n := range r.got {
		lost += b2i(n == 0)
		dup += b2i(n > 1)
	}
	for i := range r.secs {
		r.secs[i].P99 = p99(r.secs[i].lat)
	}
	recovery := recoveryTime(r.secs)
	peak := 0
	for _, s := range r.secs {
		peak = max(peak, s.Replicas)
	}
	t.Logf("commands %d, lost %d, duplicates %d, expired %d (%d after the first scale-down), errors by code %v; peak replicas %d; p99 back under %v %s after the step up",
		len(r.got), lost, dup, r.expired, r.expiredAfterDown, r.errors, peak, *stepBound, recoveryText(recovery))
	if lost > 0 || r.expiredAfterDown > 0 {
		t.Errorf("lost %d, expired after a scale-down %d: want 0 and 0", lost, r.expiredAfterDown)
	}
	if r.expired > 0 {
		t.Logf("%d commands expired before any scale-down: the machine could not carry the step (see the backlog)", r.expired)
	}
	dir := *stepOut
	if dir == "" {
		dir = t.TempDir()
	}
	if err := drawStep(dir, r.secs, *stepLead, *stepHold); err != nil {
		t.Error(err)
	}
	writeFigures(t, dir, r, lost, dup, peak, recovery)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*99/100)]
}

// recoveryTime is from the step up to the first second after which p99
// stays under the bound for 5 seconds running, within the step.
func recoveryTime(secs []stepSecond) time.Duration {
	first := int(*stepLead / time.Second)
	end := min(len(secs), int((*stepLead+*stepHold)/time.Second))
	for i := first; i+5 <= end; i++ {
		ok := true
		for _, s := range secs[i : i+5] {
			ok = ok && s.Done > 0 && s.P99 <= *stepBound
		}
		if ok {
			return time.Duration(i-first) * time.Second
		}
	}
	return -1
}

func recoveryText(d time.Duration) string {
	if d < 0 {
		return "never (within the step)"
	}
	return d.String()
}

func writeFigures(t *testing.T, dir string, r *stepRun, lost, dup, peak int, recovery time.Duration) {
	out, _ := json.MarshalIndent(map[string]any{
		"commands": len(r.got), "lost": lost, "duplicates": dup, "expired": r.expired, "expired_after_first_scale_down": r.expiredAfterDown, "errors_by_code": r.errors,
		"peak_replicas": peak, "p99_bound_ms": stepBound.Milliseconds(), "recovery_s": recovery.Seconds(),
		"low_rate": *stepLow, "high_rate": *stepHigh, "lead_s": stepLead.Seconds(), "hold_s": stepHold.Seconds(), "tail_s": stepTail.Seconds(),
	}, "", "  ")
	if err := os.WriteFile(dir+"/scale-step.json", out, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("wrote %s/scale-step.png and scale-step.json", dir)
}
