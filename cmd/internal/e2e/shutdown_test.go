package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// SIGTERM stops every service cleanly: a barista finishes the command it
// holds within its grace (the app gets the result), and each process exits 0
// within its grace.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	p := newPipeline(t, setup{
		baristas:   1,
		callers:    1,
		cashierEnv: []string{"CAFE_DRAIN_DELAY=300ms", "CAFE_SHUTDOWN_GRACE=" + grace.String()},
		baristaEnv: []string{"CAFE_BARISTA_GRACE=" + grace.String()},
		callerEnv:  []string{"CAFE_CALLER_GRACE=" + grace.String()},
	})
	devices := p.startDevices(t, 1)
	a := pipelineApp(p)
	barista, caller, cashier := p.baristas[0], p.callers[0], p.cashier

	sent := watch(t, contracts.CommandsFilter(devices.ids[0]))
	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":{"ms":1000},"id":"held"}`, "Cafe-Timeout", "20s")
	sent.waitFor(t, 1, "the barista never sent the command to the device")
	took := barista.stop(t, grace+2*time.Second)
	t.Logf("barista holding a 1s command exited 0 %v after SIGTERM", took.Round(time.Millisecond))
	if got := a.wait(t, `"held"`, resultWait); string(got.raw) != `{"jsonrpc":"2.0","id":"held","result":{"slept_ms":1000}}` {
		t.Errorf("result of the command in hand: %s", got.raw)
	}

	took = caller.stop(t, grace+2*time.Second)
	t.Logf("caller exited 0 %v after SIGTERM", took.Round(time.Millisecond))

	// The cashier fails /readyz while it drains, then exits.
	began := time.Now()
	cashier.signal(t, syscall.SIGTERM)
	brokertest.Eventually(t, 5*time.Second, "the draining cashier never failed /readyz", func() bool {
		return get(cashier.addr, "/readyz") == http.StatusServiceUnavailable || cashier.exited()
	})
	if code := cashier.wait(t, grace+2*time.Second); code != 0 {
		t.Errorf("cashier exited %d after SIGTERM, want 0", code)
	}
	t.Logf("cashier exited 0 %v after SIGTERM", time.Since(began).Round(time.Millisecond))
}
