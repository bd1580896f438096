package e2e

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// The app's id comes back as the same JSON token (number or string), and the
// device's reply reaches the app byte for byte.
func TestEchoResultReachesApp(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 1, callers: 1}, 1)
	dev := devices.ids[0]

	// The simulator splices params into its reply as they came, so the
	// whole result is predictable to the byte.
	params := `{ "b": [1, 2.50, "x<&>"], "a" : {"é":null} }`
	for _, tc := range []struct{ name, id string }{
		{"numeric id", "7"},
		{"string id", `"a-7"`},
		{"big numeric id", "-9007199254740993"}, // not exact as a float64
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","params":`+params+`,"id":`+tc.id+`}`, "Cafe-Timeout", "10s")
			got := a.wait(t, tc.id, resultWait)
			want := `{"jsonrpc":"2.0","id":` + tc.id + `,"result":` + params + `}`
			if string(got.raw) != want {
				t.Errorf("got  %s\nwant %s", got.raw, want)
			}
		})
	}

	// A device of the test's own, with a reply in an order and spacing no
	// encoder would produce: it must arrive as sent, and the device must
	// get the app's request as sent.
	t.Run("reply bytes unchanged", func(t *testing.T) {
		reply := []byte("{ \"result\" :{\"z\":1, \"a\":\"\\u00e9\\/<>\"},\n \"id\": \"odd-1\",\"jsonrpc\":\"2.0\" }")
		d := newTestDevice(t, p.devices+"-odd", func([]byte) []byte { return reply })
		request := "{\"id\":\"odd-1\", \"method\":\"echo\",\n\"jsonrpc\":\"2.0\",\"x-extra\":[true]}"
		a.submit(t, d.id, request, "Cafe-Timeout", "10s")
		got := a.wait(t, `"odd-1"`, resultWait)
		if !bytes.Equal(got.raw, reply) {
			t.Errorf("app got  %q\ndevice sent %q", got.raw, reply)
		}
		cmds := d.commands()
		if len(cmds) != 1 || string(cmds[0].payload) != request {
			t.Fatalf("device got %d commands %q, want exactly the request %q", len(cmds), cmds, request)
		}
		if dev, _, _, ok := contracts.ParseCommandTopic(cmds[0].topic); !ok || dev != d.id {
			t.Errorf("command topic %q is not devices/%s/commands/{route}/{key}", cmds[0].topic, d.id)
		}
	})
}

// A device's own error is the app's result, unchanged.
func TestDeviceErrorPassesThrough(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 1, callers: 1}, 1)

	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"fail","params":{"why": "testing"},"id":3}`, "Cafe-Timeout", "10s")
	got := a.wait(t, "3", resultWait)
	want := `{"jsonrpc":"2.0","id":3,"error":{"code":1000,"message":"simulated failure","data":{"why": "testing"}}}`
	if string(got.raw) != want {
		t.Errorf("got  %s\nwant %s", got.raw, want)
	}

	// An error in the pipeline's own range, sent by a device, is the
	// device's and passes through too.
	reply := []byte(`{"jsonrpc":"2.0","id":"e","error":{"code":-32000,"message":"my own","data":[1]}}`)
	d := newTestDevice(t, p.devices+"-err", func([]byte) []byte { return reply })
	a.submit(t, d.id, `{"jsonrpc":"2.0","method":"x","id":"e"}`, "Cafe-Timeout", "10s")
	if got := a.wait(t, `"e"`, resultWait); !bytes.Equal(got.raw, reply) {
		t.Errorf("got  %s\nwant %s", got.raw, reply)
	}
}

// A device whose presence says offline gets no command: the app hears
// -32000 at once, long before the deadline.
func TestOfflineDeviceFailsFast(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{baristas: 1, callers: 1})
	a := pipelineApp(p)
	const timeout = 10 * time.Second

	t.Run("simulator stopped", func(t *testing.T) {
		devices := p.startDevices(t, 1)
		devices.stop(t, stopTimeout) // publishes its retained offline presence, then exits
		p.syncPresence(t, p.baristas[0])
		began := time.Now()
		a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","id":"off-1"}`, "Cafe-Timeout", timeout.String())
		got := a.wait(t, `"off-1"`, timeout)
		wantError(t, got, contracts.CodeDeviceOffline)
		if took := got.at.Sub(began); took > 2*time.Second {
			t.Errorf("offline result took %v; want it well under the %v deadline", took, timeout)
		}
	})

	t.Run("presence published offline", func(t *testing.T) {
		dev := p.devices + "-gone"
		clearPresenceAtEnd(t, dev)
		link := connect(t, "presence", nil)
		publish(t, link, contracts.PresenceTopic(dev), []byte(`{"online":false}`), true)
		p.syncPresence(t, p.baristas[0])
		began := time.Now()
		a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"off-2"}`, "Cafe-Timeout", timeout.String())
		got := a.wait(t, `"off-2"`, timeout)
		wantError(t, got, contracts.CodeDeviceOffline)
		if took := got.at.Sub(began); took > 2*time.Second {
			t.Errorf("offline result took %v; want it well under the %v deadline", took, timeout)
		}
	})
}

// A device that never answers: -32001 once the command's deadline passed,
// not before, and not long after.
func TestSilentDeviceTimesOut(t *testing.T) {
	_, devices, a := scene(t, setup{baristas: 1, callers: 1}, 1)
	const deadline = time.Second

	began := time.Now()
	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"never","id":5}`, "Cafe-Timeout", deadline.String())
	got := a.wait(t, "5", deadline+resultWait)
	wantError(t, got, contracts.CodeDeviceTimeout)
	took := got.at.Sub(began)
	if took < deadline || took > deadline+3*time.Second {
		t.Errorf("timeout result came %v after submitting; want between %v and %v", took, deadline, deadline+3*time.Second)
	}
	t.Logf("device timeout result %v after submitting with Cafe-Timeout %v", took.Round(time.Millisecond), deadline)
}

// A batch mixing requests and a notification: the 202 names the requests'
// ids as sent, and each request gets its own result.
func TestBatchMixed(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 1, callers: 1}, 1)

	batch := `[
		{"jsonrpc":"2.0","method":"echo","params":[1],"id":1},
		{"jsonrpc":"2.0","method":"fail","params":{"n":2},"id":"two"},
		{"jsonrpc":"2.0","method":"echo","params":["one-way"]},
		{"jsonrpc":"2.0","method":"sleep","params":{"ms":50},"id":3}
	]`
	accepted := a.submit(t, devices.ids[0], batch, "Cafe-Timeout", "10s")
	want := fmt.Sprintf(`{"client_id":%q,"accepted":[1,"two",3],"notifications":1}`, p.client.id)
	if string(accepted) != want {
		t.Errorf("202 body %s, want %s", accepted, want)
	}
	for id, body := range map[string]string{
		"1":     `{"jsonrpc":"2.0","id":1,"result":[1]}`,
		`"two"`: `{"jsonrpc":"2.0","id":"two","error":{"code":1000,"message":"simulated failure","data":{"n":2}}}`,
		"3":     `{"jsonrpc":"2.0","id":3,"result":{"slept_ms":50}}`,
	} {
		if got := a.wait(t, id, resultWait); string(got.raw) != body {
			t.Errorf("result %s: got %s, want %s", id, got.raw, body)
		}
	}
}

// A one-way command (no id) reaches the device and produces no result.
func TestOneWayCommandGetsNoResult(t *testing.T) {
	t.Parallel()
	// One caller taking one result at a time delivers results in queue
	// order, so once a later command's result is in, any result of the
	// one-way command would be in too.
	p := newPipeline(t, setup{baristas: 1, callers: 1, callerEnv: []string{"CAFE_CALLER_CONCURRENCY=1"}})
	devices := p.startDevices(t, 1)
	a := pipelineApp(p)
	dev := devices.ids[0]

	accepted := a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","params":["one-way"]}`, "Cafe-Timeout", "10s")
	if want := fmt.Sprintf(`{"client_id":%q,"accepted":[],"notifications":1}`, p.client.id); string(accepted) != want {
		t.Errorf("202 body %s, want %s", accepted, want)
	}
	// The barista counts a command only after publishing its result, if
	// it has one: from here on, a result of the one-way command is queued.
	brokertest.Eventually(t, resultWait, "the barista never handed the one-way command to the device", func() bool {
		return p.baristas[0].metric(t, `cafe_barista_commands_total{outcome="sent"}`) == 1
	})
	a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"sentinel"}`, "Cafe-Timeout", "10s")
	a.wait(t, `"sentinel"`, resultWait)
	if got := a.all(); len(got) != 1 {
		t.Errorf("app got %d results, want only the sentinel's: %s", len(got), a.summary())
	}
	if n := p.callers[0].metric(t, `cafe_caller_results_total{outcome="delivered"}`); n != 1 {
		t.Errorf("caller delivered %v results, want 1", n)
	}
	stats := devices.stopAndStats(t)
	if stats.Totals.Notifications != 1 || stats.Totals.Executed != 2 || stats.Totals.RepliesSent != 1 {
		t.Errorf("device counted %+v; want 2 executed, 1 of them a notification, 1 reply", stats.Totals)
	}
}

// A command whose deadline passed while no barista ran ends as -32002, and
// the device never sees it.
func TestExpiredCommandNeverReachesDevice(t *testing.T) {
	p, devices, a := scene(t, setup{callers: 1}, 1) // no barista yet
	dev := devices.ids[0]
	const timeout = 300 * time.Millisecond

	a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"late"}`, "Cafe-Timeout", timeout.String())
	// The cashier counted the deadline from the request's arrival, before
	// its 202, so it has passed once this much time has gone by from now.
	expired := time.Now().Add(timeout)
	if n := brokertest.QueueDepth(t, p.top.CommandsQueue()); n != 1 {
		t.Fatalf("commands queue holds %d, want the 1 command waiting", n)
	}
	time.Sleep(time.Until(expired) + 50*time.Millisecond) // the condition is the clock itself

	b := p.addBarista(t)
	b.waitReady(t)
	wantError(t, a.wait(t, `"late"`, resultWait), contracts.CodeExpired)

	// A live command afterwards proves the device was listening all along.
	a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"live"}`, "Cafe-Timeout", "10s")
	if got := a.wait(t, `"live"`, resultWait); got.resp.Error != nil {
		t.Fatalf("live command: %s", got.raw)
	}
	if n := b.metric(t, `cafe_barista_commands_total{outcome="expired"}`); n != 1 {
		t.Errorf("barista counted %v expired commands, want 1", n)
	}
	stats := devices.stopAndStats(t)
	if stats.Totals.Received != 1 {
		t.Errorf("device received %d commands, want only the live one: %+v", stats.Totals.Received, stats.Totals)
	}
}
