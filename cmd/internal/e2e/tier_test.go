package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cafe/cmd/internal/tier/tiertest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// The pipeline over the MQTT tier (deploy/README.md, "The MQTT tier"): the
// real cashier, barista and caller on a scratch core, devices on two edges,
// the app on edge-1; the logins of the pipeline's registry put on every
// broker by the real `cafe broker-auth --broker ...`.

// tierScene is a pipeline on a scratch tier of two edges, with the app on
// edge-1 and perEdge simulated devices on each edge.
type tierScene struct {
	p      *pipeline
	tr     *tiertest.Tier
	app    *app
	fleets [2]*fleet
}

func newTierScene(t *testing.T, perEdge int, flags ...string) *tierScene {
	t.Helper()
	t.Parallel()
	tr := tiertest.Start(t, 2, "clients: []\n") // the services' logins; the pipeline's come below
	core := []string{"CAFE_MQTT_URL=" + tr.Core().URL()}
	// A device's breaker, opened by the timeouts of an edge that died,
	// stays open 2 s (30 s by default) once the device is back.
	p := newPipeline(t, setup{baristas: 1, callers: 1, baristaEnv: append(core, "CAFE_BREAKER_OPEN=2s"), callerEnv: core,
		cashierEnv: []string{"CAFE_SESSION_MQTT_URL=" + tr.Edge(1).URL()}})
	urls := []string{tr.Core().URL(), tr.Edge(1).URL(), tr.Edge(2).URL()}
	code, stdout, out := run(t, readyTimeout, "cafe", nil, "broker-auth", "--once", "--clients-file", p.registry, "--broker", strings.Join(urls, ","))
	if code != 0 || strings.Count(stdout, "created") != 3 {
		t.Fatalf("cafe broker-auth --once on the tier: exit %d, want 0 and one line per broker:\n%s", code, out)
	}
	s := &tierScene{p: p, tr: tr, app: pipelineApp(p)}
	janitor := start(t, "cafe tier janitor", "cafe", nil, "tier", "janitor", "--core", tr.Core().URL(),
		"--edge", "edge-1="+tr.Edge(1).URL()+",edge-2="+tr.Edge(2).URL())
	brokertest.Eventually(t, readyTimeout, "the janitor never connected to the core and both edges", func() bool {
		return strings.Count(janitor.out.String(), "mqtt connected") >= 3
	})
	for i := range s.fleets {
		s.fleets[i] = s.devicesOn(t, i+1, perEdge, flags...)
	}
	return s
}

// devicesOn runs n simulated devices of the pipeline on edge i.
func (s *tierScene) devicesOn(t *testing.T, edge, n int, flags ...string) *fleet {
	t.Helper()
	first := (edge-1)*devicesPerFleet + 1
	pattern := s.p.devices + "-%d"
	f := &fleet{stats: filepath.Join(t.TempDir(), "stats.json"), first: first}
	var secrets strings.Builder
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf(pattern, i)
		f.ids = append(f.ids, id)
		fmt.Fprintf(&secrets, "%s %s\n", id, brokertest.Key().DeviceSecret(id, 1))
	}
	file := filepath.Join(t.TempDir(), "secrets.txt")
	if err := os.WriteFile(file, []byte(secrets.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--count", strconv.Itoa(n), "--pattern", pattern, "--first", strconv.Itoa(first),
		"--stats-file", f.stats, "--secrets-file", file}, flags...)
	env := append(append([]string{}, s.p.env...), "CAFE_MQTT_URL="+s.tr.Edge(edge).URL())
	f.proc = start(t, fmt.Sprintf("devicesim@edge-%d", edge), "devicesim", env, args...)
	f.waitOutput(t, fmt.Sprintf("%d devices online", n), readyTimeout)
	return f
}

// TestTierPipeline: commands to devices on both edges are answered, each
// result reaching the app on edge-1 once.
func TestTierPipeline(t *testing.T) {
	s := newTierScene(t, 3)
	var ids []string
	for _, f := range s.fleets {
		for _, d := range f.ids {
			id := strconv.Quote("c-" + d)
			ids = append(ids, id)
			s.app.submit(t, d, `{"jsonrpc":"2.0","method":"echo","params":{"to":"`+d+`"},"id":`+id+`}`, "Cafe-Timeout", "10s")
		}
	}
	for _, id := range ids {
		r := s.app.wait(t, id, resultWait)
		if r.resp.Error != nil || !strings.Contains(string(r.resp.Result), strings.Trim(id, `"`)[2:]) {
			t.Errorf("result %s: want the device's echo", r.raw)
		}
	}
	// A marker command to every device, sent after every result arrived:
	// its result comes down the same bridges to the same app after any
	// duplicate of theirs, so once each marker's result is in, so is any
	// duplicate (ordered evidence, not a time window).
	var markers []string
	for _, f := range s.fleets {
		for _, d := range f.ids {
			id := strconv.Quote("m-" + d)
			markers = append(markers, id)
			s.app.submit(t, d, `{"jsonrpc":"2.0","method":"echo","id":`+id+`}`, "Cafe-Timeout", "10s")
		}
	}
	for _, id := range markers {
		s.app.wait(t, id, resultWait)
	}
	for _, id := range append(ids, markers...) {
		if n := len(s.app.withID(id)); n != 1 {
			t.Errorf("id %s: %d results, want 1", id, n)
		}
	}
}

// TestTierEdgeKilled: edge-2 is killed (SIGKILL, a crash) or stopped
// (SIGTERM) while commands flow to devices on both edges, and started
// again 2 s later. Every accepted command still ends as a result by its
// id: the device's reply, or a pipeline error (device timeout for a
// command edge-2 took down with it, device offline once the core knows
// its devices are gone: from their wills on a clean stop, from the janitor
// after a crash); none is lost, and edge-2's devices answer again once
// they are back.
func TestTierEdgeKilled(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) { edgeDown(t, sig) })
	}
}

func edgeDown(t *testing.T, sig syscall.Signal) {
	s := newTierScene(t, 4)
	devices := append(append([]string{}, s.fleets[0].ids...), s.fleets[1].ids...)
	var (
		mu       sync.Mutex
		accepted []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // 25 commands a second to random devices of both edges
		defer close(done)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			id := strconv.Quote(fmt.Sprintf("k-%d", n))
			if s.app.tryPost(devices[rand.IntN(len(devices))], `{"jsonrpc":"2.0","method":"echo","id":`+id+`}`, "2s") == http.StatusAccepted {
				mu.Lock()
				accepted = append(accepted, id)
				mu.Unlock()
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	s.tr.Kill("edge-2", sig)
	time.Sleep(2 * time.Second)
	s.tr.Start("edge-2")
	restarted := time.Now()
	s.tr.WaitBridges()
	if s.fleets[1].exited() {
		t.Fatal("edge-2's devicesim exited with its broker; it should reconnect")
	}
	time.Sleep(2500 * time.Millisecond)
	close(stop)
	<-done

	counts := map[string]int{}
	for _, id := range accepted {
		r := s.app.wait(t, id, resultWait)
		counts[outcome(r)]++
	}
	t.Logf("edge-2 %v and restarted: %d accepted, outcomes %v", sig, len(accepted), counts)
	for o := range counts {
		if o != "ok" && o != fmt.Sprint(contracts.CodeDeviceTimeout) && o != fmt.Sprint(contracts.CodeDeviceOffline) && o != fmt.Sprint(contracts.CodeDeviceUnreachable) {
			t.Errorf("outcome %s: want a reply, or a device timeout, offline or unreachable error", o)
		}
	}
	if counts["ok"] == 0 || counts["ok"] == len(accepted) {
		t.Errorf("outcomes %v: want replies from edge-1's devices and errors for commands lost with edge-2", counts)
	}
	if offline := counts[fmt.Sprint(contracts.CodeDeviceOffline)]; offline == 0 {
		t.Errorf("outcomes %v: want device offline errors once the core knew edge-2 was gone (its devices' wills, or the janitor's)", counts)
	}
	for _, d := range s.fleets[1].ids { // back: each of edge-2's devices answers again
		id := strconv.Quote("after-" + d)
		brokertest.Eventually(t, resultWait, d+" never answered again after edge-2 came back", func() bool {
			s.app.submit(t, d, `{"jsonrpc":"2.0","method":"echo","id":`+id+`}`, "Cafe-Timeout", "1s")
			r := s.app.wait(t, id, resultWait)
			s.app.forget(id)
			return outcome(r) == "ok"
		})
	}
	t.Logf("edge-2 %v: every device of edge-2 answered again %v after it was started again", sig, time.Since(restarted).Round(100*time.Millisecond))
}

// outcome is "ok" for a result, else the error's code.
func outcome(r result) string {
	if r.resp.Error == nil {
		return "ok"
	}
	return fmt.Sprint(r.resp.Error.Code)
}

// tryPost submits body for device with timeout as its Cafe-Timeout, from
// any goroutine: the status, or 0 when the request failed.
func (a *app) tryPost(device, body, timeout string) int {
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/devices/"+device+"/commands", strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+a.client.token)
	req.Header.Set("Cafe-Timeout", timeout)
	res, err := a.http.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// forget drops the results with raw id token id, so the id can be used again.
func (a *app) forget(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := a.results[:0]
	for _, r := range a.results {
		if string(r.resp.ID) != id {
			kept = append(kept, r)
		}
	}
	a.results = kept
}
