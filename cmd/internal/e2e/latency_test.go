package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestLoneCommandLatency measures, without asserting, how long a lone
// command takes from the app's HTTP submit to its result arriving over
// MQTT, through a cashier, a barista, a caller and a simulated device, each
// a process of its own. Not parallel: it runs before the parallel tests
// start, with the machine to itself.
func TestLoneCommandLatency(t *testing.T) {
	p := newPipeline(t, setup{baristas: 1, callers: 1})
	devices := p.startDevices(t, 1)
	a := pipelineApp(p)
	const warmup, n = 5, 100

	lat := make([]time.Duration, 0, n)
	for i := range warmup + n {
		id := fmt.Sprint(i + 1)
		began := time.Now()
		a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","params":{"n":`+id+`},"id":`+id+`}`, "Cafe-Timeout", "10s")
		r := a.wait(t, id, resultWait)
		if r.resp.Error != nil {
			t.Fatalf("command %s: %s", id, r.raw)
		}
		if i >= warmup { // the first commands also open connections
			lat = append(lat, r.at.Sub(began))
		}
	}
	slices.Sort(lat)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	t.Logf("lone command latency over %d: p50=%s p90=%s max=%s", n, ms(lat[n*50/100-1]), ms(lat[n*90/100-1]), ms(lat[n-1]))
}
