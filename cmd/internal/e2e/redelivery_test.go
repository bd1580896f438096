package e2e

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// A barista killed outright while it holds a command loses nothing: RabbitMQ
// gives the command to another barista, which sends it with the same repeat
// key, so the device runs it once and the app gets one result.
func TestKilledBaristasCommandIsRedelivered(t *testing.T) {
	p, devices, a := scene(t, setup{callers: 1}, 1)
	sent := watch(t, contracts.CommandsFilter(devices.ids[0]))
	doomed := p.addBarista(t)
	forgetMQTTSessionAtEnd(t, "cafe-barista-"+doomed.route) // SIGKILL leaves it on the broker
	doomed.waitReady(t)
	p.waitConsumers(t, p.top.CommandsQueue(), 1)

	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":[500],"id":"k"}`, "Cafe-Timeout", "20s")
	sent.waitFor(t, 1, "the barista never sent the command to the device")
	doomed.signal(t, syscall.SIGKILL)
	doomed.wait(t, stopTimeout)

	p.addBarista(t).waitReady(t)
	ranOnce(t, a, devices, sent, `"k"`, `{"jsonrpc":"2.0","id":"k","result":{"slept_ms":500}}`)
}

// A barista whose grace runs out hands the command back; the next barista
// finishes it, and the device runs it only once.
func TestBaristaHandsBackWhatGraceCannotFinish(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 1, callers: 1, baristaEnv: []string{"CAFE_BARISTA_GRACE=300ms"}}, 1)

	sent := watch(t, contracts.CommandsFilter(devices.ids[0]))
	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":[1500],"id":"h"}`, "Cafe-Timeout", "20s")
	sent.waitFor(t, 1, "the barista never sent the command to the device")
	p.baristas[0].stop(t, stopTimeout)

	p.addBarista(t).waitReady(t)
	ranOnce(t, a, devices, sent, `"h"`, `{"jsonrpc":"2.0","id":"h","result":{"slept_ms":1500}}`)
}

// ranOnce checks the end of a redelivery: the app got the one result want
// for id, and the device received the command twice, with the same bytes
// and repeat key (sent saw both), and ran it once.
func ranOnce(t *testing.T, a *app, devices *fleet, sent *watcher, id, want string) {
	t.Helper()
	if got := a.wait(t, id, resultWait); string(got.raw) != want {
		t.Errorf("result: %s, want %s", got.raw, want)
	}
	stats := devices.stopAndStats(t)
	if s := stats.Totals; s.Received != 2 || s.Executed != 1 || s.Duplicates != 1 {
		t.Errorf("device counted %+v; want the command received twice and run once", s)
	}
	if n := len(a.all()); n != 1 {
		t.Errorf("app got %d results, want 1: %s", n, a.summary())
	}
	sameKeyTwice(t, sent.messages())
}

// sameKeyTwice checks that a command was sent twice, by two baristas, with
// the same bytes and the same repeat key.
func sameKeyTwice(t *testing.T, sent []command) {
	t.Helper()
	if len(sent) != 2 {
		t.Fatalf("command sent %d times, want 2", len(sent))
	}
	_, route1, key1, ok1 := contracts.ParseCommandTopic(sent[0].topic)
	_, route2, key2, ok2 := contracts.ParseCommandTopic(sent[1].topic)
	switch {
	case !ok1 || !ok2:
		t.Errorf("command topics %q, %q are not devices/{id}/commands/{route}/{key}", sent[0].topic, sent[1].topic)
	case key1 != key2:
		t.Errorf("repeat keys %q and %q differ; a redelivery must keep its key", key1, key2)
	case route1 == route2:
		t.Errorf("both sends came from route %q; want the second from another barista", route1)
	case !bytes.Equal(sent[0].payload, sent[1].payload):
		t.Errorf("payloads differ: %s and %s", sent[0].payload, sent[1].payload)
	}
}

// forgetMQTTSessionAtEnd drops the persistent session of MQTT client id when
// the test ends (a clean-session connection with that id replaces it), for
// a process that cannot drop its own because it was killed.
func forgetMQTTSessionAtEnd(t testing.TB, clientID string) {
	t.Helper()
	t.Cleanup(func() { forgetMQTTSession(t, clientID) })
}

// forgetMQTTSession drops the broker's session of clientID now, and what
// it holds, by connecting with a clean session.
func forgetMQTTSession(t testing.TB, clientID string) {
	t.Helper()
	link, stop := cleanLink(t, clientID)
	if link == nil {
		return
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.WaitConnected(ctx); err != nil {
		t.Errorf("dropping the MQTT session of %s: %v", clientID, err)
	}
}

// cleanLink runs a clean-session MQTT link of clientID as cafe's test
// login until stop; nil (and the test failed) when it cannot be made.
func cleanLink(t testing.TB, clientID string) (link *mqttlink.Link, stop func()) {
	t.Helper()
	link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: clientID, CleanSession: true}, quietLog)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	return link, link.Background()
}
