package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
)

// Two baristas compete for one stream of commands: every command is
// answered exactly once, and both baristas did some of the work.
func TestTwoBaristasShareCommands(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 2, callers: 1}, 4, "--latency", "2ms")
	const total, batch = 200, 20

	for first := 1; first <= total; first += batch {
		reqs := make([]string, 0, batch)
		for id := first; id < first+batch; id++ {
			reqs = append(reqs, fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":[%d],"id":%d}`, id, id))
		}
		device := devices.ids[(first/batch)%len(devices.ids)]
		a.submit(t, device, "["+strings.Join(reqs, ",")+"]", "Cafe-Timeout", "30s")
	}

	// Settled: the caller has had the MQTT broker take a result for every
	// command, and the app has received that many.
	brokertest.Eventually(t, 30*time.Second, "not every command was answered", func() bool {
		return p.callers[0].metric(t, `cafe_caller_results_total{outcome="delivered"}`) >= total && len(a.all()) >= total
	})
	seen := map[string]int{}
	for _, r := range a.all() {
		seen[string(r.resp.ID)]++
	}
	for id := 1; id <= total; id++ {
		key := fmt.Sprint(id)
		if seen[key] != 1 {
			t.Errorf("command %d answered %d times, want once", id, seen[key])
		}
		delete(seen, key)
	}
	if len(seen) > 0 {
		t.Errorf("results for ids never submitted: %v", seen)
	}
	if n := p.callers[0].metric(t, `cafe_caller_results_total{outcome="delivered"}`); n != total {
		t.Errorf("caller delivered %v results, want %d", n, total)
	}

	// A barista counts a command just after its result is confirmed, so
	// the result may reach the app a moment before the count.
	brokertest.Eventually(t, resultWait, "the baristas did not count every command", func() bool {
		var sum float64
		for _, b := range p.baristas {
			sum += b.metric(t, `cafe_barista_commands_total{outcome="reply"}`)
		}
		return sum == total
	})
	for _, b := range p.baristas {
		replies := b.metric(t, `cafe_barista_commands_total{outcome="reply"}`)
		t.Logf("%s answered %v commands", b.name, replies)
		if replies == 0 {
			t.Errorf("%s did no work", b.name)
		}
		for _, v := range []string{"requeue", "hand_back", "reject"} {
			if n := b.metric(t, `cafe_deliveries_total{consumer="barista",verdict="`+v+`"}`); n != 0 {
				t.Errorf("%s settled %v commands as %s, want none", b.name, n, v)
			}
		}
	}
	if n := brokertest.QueueDepth(t, p.top.CommandsQueue()); n != 0 {
		t.Errorf("commands queue still holds %d", n)
	}
}
