package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// A barista killed outright while it holds a command loses nothing: RabbitMQ
// gives the command to another barista, which sends it with the same repeat
// key, so the device runs it once and the app gets one result.
func TestKilledBaristasCommandIsRedelivered(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{callers: 1})
	devices := p.startDevices(1)
	a := pipelineApp(p)
	route := brokertest.ID(t, "r")
	forgetMQTTSessionAtEnd(t, "cafe-barista-"+route) // SIGKILL leaves it on the broker
	doomed := p.addBarista("CAFE_BARISTA_ROUTE=" + route)
	doomed.waitReady()
	p.waitConsumers(p.top.CommandsQueue(), 1)

	a.submit(devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":[500],"id":"k"}`, "Cafe-Timeout", "20s")
	brokertest.Eventually(t, resultWait, "the barista never sent the command to the device", func() bool {
		return doomed.metric("cafe_barista_replies_waiting") == 1
	})
	doomed.signal(syscall.SIGKILL)
	doomed.wait(stopTimeout)

	p.addBarista().waitReady()
	if got := a.wait(`"k"`, resultWait); string(got.raw) != `{"jsonrpc":"2.0","id":"k","result":{"slept_ms":500}}` {
		t.Errorf("result: %s", got.raw)
	}
	stats := devices.stopAndStats()
	if s := stats.Totals; s.Received != 2 || s.Executed != 1 || s.Duplicates != 1 {
		t.Errorf("device counted %+v; want the command received twice and run once", s)
	}
	if n := len(a.all()); n != 1 {
		t.Errorf("app got %d results, want 1: %s", n, a.summary())
	}
}

// A barista whose grace runs out hands the command back; the next barista
// finishes it, and the device runs it only once.
func TestBaristaHandsBackWhatGraceCannotFinish(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{baristas: 1, callers: 1, baristaEnv: []string{"CAFE_BARISTA_GRACE=300ms"}})
	devices := p.startDevices(1)
	a := pipelineApp(p)

	a.submit(devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":[1500],"id":"h"}`, "Cafe-Timeout", "20s")
	brokertest.Eventually(t, resultWait, "the barista never sent the command to the device", func() bool {
		return p.baristas[0].metric("cafe_barista_replies_waiting") == 1
	})
	p.baristas[0].stop(stopTimeout)

	p.addBarista().waitReady()
	if got := a.wait(`"h"`, resultWait); string(got.raw) != `{"jsonrpc":"2.0","id":"h","result":{"slept_ms":1500}}` {
		t.Errorf("result: %s", got.raw)
	}
	stats := devices.stopAndStats()
	if s := stats.Totals; s.Received != 2 || s.Executed != 1 || s.Duplicates != 1 {
		t.Errorf("device counted %+v; want the command received twice and run once", s)
	}
	if n := len(a.all()); n != 1 {
		t.Errorf("app got %d results, want 1: %s", n, a.summary())
	}
}

// forgetMQTTSessionAtEnd drops the persistent session of MQTT client id when
// the test ends (a clean-session connection with that id replaces it), for
// a process that cannot drop its own because it was killed.
func forgetMQTTSessionAtEnd(t testing.TB, clientID string) {
	t.Helper()
	t.Cleanup(func() {
		link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: clientID, CleanSession: true}, quietLog)
		if err != nil {
			t.Error(err)
			return
		}
		link.Start()
		defer link.Close(100*time.Millisecond, false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := link.WaitConnected(ctx); err != nil {
			t.Errorf("dropping the MQTT session of %s: %v", clientID, err)
		}
	})
}
