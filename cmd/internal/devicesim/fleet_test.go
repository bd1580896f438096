package devicesim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/devicesim/simtest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// fleet is a running devicesim.Fleet with ids of the test's own.
type fleet struct {
	*devicesim.Fleet
	ids  []string
	stop func() // stops the fleet and waits for Run; idempotent
}

// runFleet starts a fleet of cfg.Count devices (default 1) named after the
// test, waits until it is online, and stops it and clears its retained
// presence when the test ends.
func runFleet(t testing.TB, cfg devicesim.Config) *fleet {
	t.Helper()
	if cfg.MQTTURL == "" {
		cfg.MQTTURL = brokertest.MQTTURL()
	}
	if cfg.Count == 0 {
		cfg.Count = 1
	}
	cfg.Pattern = brokertest.ID(t, "d") + "-%d"
	cfg.First = 1
	cfg.MaxBackoff = 200 * time.Millisecond
	f, err := devicesim.New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet stats when the test failed: %+v", f.Stats().Totals)
		}
		stop()
		c := f.Stats().Totals
		if c.Received != c.Executed+c.FailuresInjected+c.Duplicates+c.Invalid+c.Dropped {
			t.Errorf("stats do not add up: %+v", c)
		}
		simtest.ClearPresence(t, f.IDs()...)
	})
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second+time.Duration(cfg.Count)*5*time.Millisecond)
	defer wcancel()
	if err := f.WaitOnline(wctx); err != nil {
		t.Fatal(err)
	}
	return &fleet{Fleet: f, ids: f.IDs(), stop: stop}
}

// errorOf decodes a reply that must be an error response with the given id.
func errorOf(t *testing.T, reply, id string) *contracts.Error {
	t.Helper()
	var r contracts.Response
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatalf("reply %s: %v", reply, err)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != id || r.Error == nil || r.Result != nil {
		t.Fatalf("reply %s: want an error response with id %s", reply, id)
	}
	return r.Error
}

// statsAre waits until the fleet's totals are want (work runs in parallel
// with the replies, so counters may trail the last reply for a moment).
func statsAre(t *testing.T, f *fleet, want devicesim.Counters) {
	t.Helper()
	var last devicesim.Counters
	brokertest.Eventually(t, wait, fmt.Sprintf("stats never became %+v; the last ones are logged above", want), func() bool {
		got := f.Stats().Totals
		if got != last {
			t.Logf("stats %+v", got)
			last = got
		}
		return got == want
	})
}
