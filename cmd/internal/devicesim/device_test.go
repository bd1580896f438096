package devicesim_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/devicesim/simtest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

func TestEchoKeepsIDAndParamsBytes(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	for _, tc := range []struct{ name, id, params string }{
		{"number", `7`, `[1,2]`},
		{"negative number", `-12`, `{"a":1}`},
		{"19 digits", `1234567890123456789`, `[]`},
		{"string", `"a-7"`, `{ "spaced" : [ 1 , "<&>" ] }`},
		{"string of digits", `"7"`, `[true]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := b.Call(f.ids[0], `{"jsonrpc":"2.0","id":`+tc.id+`,"method":"echo","params":`+tc.params+`}`)
			if want := `{"jsonrpc":"2.0","id":` + tc.id + `,"result":` + tc.params + `}`; got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
	if got := b.Call(f.ids[0], `{"id":"n","method":"echo","jsonrpc":"2.0"}`); got != `{"jsonrpc":"2.0","id":"n","result":null}` {
		t.Fatalf("echo without params: %s", got)
	}
}

func TestSleep(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]

	start := time.Now()
	key := b.Send(d, "", `{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":150}}`)
	quick := b.Call(d, `{"jsonrpc":"2.0","id":2,"method":"sleep","params":[0]}`)
	r := b.Replies(d, key, 1)[0]
	if got, want := string(r.Payload), `{"jsonrpc":"2.0","id":1,"result":{"slept_ms":150}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if took := r.At.Sub(start); took < 150*time.Millisecond {
		t.Fatalf("reply after %v, before the 150ms sleep was over", took)
	}
	if quick != `{"jsonrpc":"2.0","id":2,"result":{"slept_ms":0}}` {
		t.Fatalf("a short sleep waited for a long one, or failed: %s", quick)
	}
	for _, params := range []string{``, `,"params":{"ms":-1}`, `,"params":{"ms":"5"}`, `,"params":[1,2]`, `,"params":{"ms":1.5}`} {
		e := errorOf(t, b.Call(d, `{"jsonrpc":"2.0","id":3,"method":"sleep"`+params+`}`), `3`)
		if e.Code != contracts.CodeInvalidParams {
			t.Errorf("params %s: code %d, want -32602", params, e.Code)
		}
	}
}

func TestFailUnknownAndNever(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]

	if got, want := b.Call(d, `{"jsonrpc":"2.0","id":"f1","method":"fail","params":{"x": 1}}`),
		`{"jsonrpc":"2.0","id":"f1","error":{"code":1000,"message":"simulated failure","data":{"x": 1}}}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got, want := b.Call(d, `{"jsonrpc":"2.0","id":2,"method":"fail"}`),
		`{"jsonrpc":"2.0","id":2,"error":{"code":1000,"message":"simulated failure"}}`; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if e := errorOf(t, b.Call(d, `{"jsonrpc":"2.0","id":3,"method":"launch"}`), `3`); e.Code != contracts.CodeMethodNotFound {
		t.Fatalf("unknown method: code %d, want -32601", e.Code)
	}
	never := b.Send(d, "", `{"jsonrpc":"2.0","id":4,"method":"never"}`)
	b.Silent(d, never)
	statsAre(t, f, devicesim.Counters{Received: 5, Executed: 5, RepliesSent: 4, ErrorsReplied: 3})
}

func TestNotificationIsExecutedNotAnswered(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	key := b.Send(d, "", `{"jsonrpc":"2.0","method":"echo","params":[1]}`)
	b.Silent(d, key)
	statsAre(t, f, devicesim.Counters{Received: 2, Executed: 2, Notifications: 1, RepliesSent: 1})
}

func TestRepeatedKeyRunsOnceAnswersEachTime(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	key := b.Send(d, "", `{"jsonrpc":"2.0","id":1,"method":"echo","params":[1]}`)
	b.Replies(d, key, 1)
	// A redelivery carries the same command; a device that acted on the
	// payload would answer this one differently.
	b.Send(d, key, `{"jsonrpc":"2.0","id":1,"method":"echo","params":["changed"]}`)
	got := b.Replies(d, key, 2)
	if string(got[0].Payload) != string(got[1].Payload) || string(got[0].Payload) != `{"jsonrpc":"2.0","id":1,"result":[1]}` {
		t.Fatalf("replies %s and %s: want the first reply twice", got[0].Payload, got[1].Payload)
	}
	statsAre(t, f, devicesim.Counters{Received: 2, Executed: 1, Duplicates: 1, RepliesSent: 2})
}

func TestRepeatOnAnotherRouteWaitsForTheFirstExecution(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	first, second := simtest.NewBarista(t), simtest.NewBarista(t)
	d := f.ids[0]
	start := time.Now()
	key := first.Send(d, "", `{"jsonrpc":"2.0","id":"s","method":"sleep","params":{"ms":300}}`)
	second.Send(d, key, `{"jsonrpc":"2.0","id":"s","method":"sleep","params":{"ms":300}}`) // redelivered to another barista
	a, b := first.Replies(d, key, 1)[0], second.Replies(d, key, 1)[0]
	if string(a.Payload) != string(b.Payload) || string(a.Payload) != `{"jsonrpc":"2.0","id":"s","result":{"slept_ms":300}}` {
		t.Fatalf("replies %s and %s: want the same sleep reply on both routes", a.Payload, b.Payload)
	}
	if took := b.At.Sub(start); took < 300*time.Millisecond {
		t.Fatalf("the repeat was answered after %v, before the first execution finished", took)
	}
	// Sleeping twice would have taken 600ms and counted two executions.
	statsAre(t, f, devicesim.Counters{Received: 2, Executed: 1, Duplicates: 1, RepliesSent: 2})
}

func TestRepeatOfNotificationStaysSilent(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	key := b.Send(d, "", `{"jsonrpc":"2.0","method":"never"}`)
	b.Send(d, key, `{"jsonrpc":"2.0","method":"never"}`)
	b.Silent(d, key)
	statsAre(t, f, devicesim.Counters{Received: 3, Executed: 2, Notifications: 1, Duplicates: 1, RepliesSent: 1})
}

func TestPresence(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{Count: 2})
	b := simtest.NewBarista(t)
	url := brokertest.MQTTURL()
	for _, id := range f.ids {
		simtest.PresenceIs(t, simtest.WatchPresence(t, url, id), id, true) // retained: the watcher came after the announcement
	}

	d := f.ids[0]
	if err := f.GoOffline(d); err != nil {
		t.Fatal(err)
	}
	simtest.PresenceIs(t, simtest.WatchPresence(t, url, d), d, false)
	if err := f.GoOffline(d); err == nil {
		t.Fatal("GoOffline of an offline device succeeded")
	}
	if got := f.Stats(); got.Online != 1 || got.Devices[0].Online || !got.Devices[1].Online {
		t.Fatalf("stats say %d online (%v, %v); want only the second", got.Online, got.Devices[0].Online, got.Devices[1].Online)
	}

	if err := f.GoOnline(d); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := f.WaitOnline(ctx); err != nil {
		t.Fatal(err)
	}
	simtest.PresenceIs(t, simtest.WatchPresence(t, url, d), d, true)
	if got := b.Call(d, `{"jsonrpc":"2.0","id":1,"method":"echo"}`); got != `{"jsonrpc":"2.0","id":1,"result":null}` {
		t.Fatalf("back online, echo gave %s", got)
	}

	f.stop()
	for _, id := range f.ids {
		simtest.PresenceIs(t, simtest.WatchPresence(t, url, id), id, false)
	}
	if err := f.GoOnline(d); !errors.Is(err, devicesim.ErrNotRunning) {
		t.Fatalf("GoOnline after Run returned: %v, want ErrNotRunning", err)
	}
	if err := f.WaitOnline(ctx); !errors.Is(err, devicesim.ErrNotRunning) {
		t.Fatalf("WaitOnline after Run returned: %v, want ErrNotRunning", err)
	}
	if err := f.Run(ctx); !errors.Is(err, devicesim.ErrAlreadyRun) {
		t.Fatalf("second Run: %v, want ErrAlreadyRun", err)
	}
	if err := f.GoOffline("nobody"); !errors.Is(err, devicesim.ErrUnknownDevice) {
		t.Fatalf("GoOffline(nobody): %v, want ErrUnknownDevice", err)
	}
}

func TestLastWillWhenConnectionIsCut(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(brokertest.MQTTURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := brokertest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	f := runFleet(t, devicesim.Config{MQTTURL: u.String()})
	d := f.ids[0]
	watch := simtest.WatchPresence(t, brokertest.MQTTURL(), d) // straight to the broker, not through the proxy
	simtest.PresenceIs(t, watch, d, true)

	proxy.Cut()
	simtest.PresenceIs(t, watch, d, false)
	if got := watch.On(contracts.PresenceTopic(d)); string(got[len(got)-1].Payload) != `{"online":false,"sim":true}` {
		t.Fatalf("last will %s", got[len(got)-1].Payload)
	}
	proxy.Restore()
	simtest.PresenceIs(t, watch, d, true) // announced again on reconnecting
	b := simtest.NewBarista(t)
	if got := b.Call(d, `{"jsonrpc":"2.0","id":1,"method":"echo"}`); got != `{"jsonrpc":"2.0","id":1,"result":null}` {
		t.Fatalf("after reconnecting, echo gave %s", got)
	}
}

func TestErrorRateOneFailsEveryRequest(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{ErrorRate: 1})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	for _, m := range []string{"echo", "sleep", "never", "nonsense"} {
		got := b.Call(d, `{"jsonrpc":"2.0","id":"x","method":"`+m+`","params":[5]}`)
		if want := `{"jsonrpc":"2.0","id":"x","error":{"code":1000,"message":"simulated failure","data":[5]}}`; got != want {
			t.Fatalf("%s: got %s, want %s", m, got, want)
		}
	}
	// Notifications get no answer, so the error rate leaves them alone.
	b.Silent(d, b.Send(d, "", `{"jsonrpc":"2.0","method":"echo"}`))
	statsAre(t, f, devicesim.Counters{Received: 6, FailuresInjected: 5, Executed: 1, Notifications: 1, RepliesSent: 5, ErrorsReplied: 5})
}

func TestSameSeedMakesSameChoices(t *testing.T) {
	t.Parallel()
	failures := func() string {
		f := runFleet(t, devicesim.Config{ErrorRate: 0.5, Seed: 7})
		b := simtest.NewBarista(t)
		var keys []string
		for range 20 {
			keys = append(keys, b.Send(f.ids[0], "", `{"jsonrpc":"2.0","id":1,"method":"echo"}`))
		}
		var pattern strings.Builder
		for _, k := range keys {
			if strings.Contains(string(b.Replies(f.ids[0], k, 1)[0].Payload), `"error"`) {
				pattern.WriteByte('x')
			} else {
				pattern.WriteByte('.')
			}
		}
		return pattern.String()
	}
	a, b := failures(), failures()
	if a != b || !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("failure patterns %s and %s: want the same mix twice", a, b)
	}
}

func TestHostileInputsAreAnsweredAndCounted(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	for _, tc := range []struct {
		name    string
		payload string
		code    contracts.Code
	}{
		{"empty", ``, contracts.CodeParseError},
		{"garbage", `not json at all`, contracts.CodeParseError},
		{"truncated", `{"jsonrpc":"2.0","id":1,"method":"echo"`, contracts.CodeParseError},
		{"not utf-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", contracts.CodeParseError},
		{"wrong version", `{"jsonrpc":"1.0","id":1,"method":"echo"}`, contracts.CodeInvalidRequest},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"echo"}]`, contracts.CodeInvalidRequest},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"echo"}`, contracts.CodeInvalidRequest},
		{"duplicate member", `{"jsonrpc":"2.0","id":1,"id":2,"method":"echo"}`, contracts.CodeInvalidRequest},
		{"oversized", `{"jsonrpc":"2.0","id":1,"method":"echo","params":["` + strings.Repeat("a", devicesim.MaxCommandBytes) + `"]}`, contracts.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if e := errorOf(t, b.Call(d, tc.payload), "null"); e.Code != tc.code {
				t.Fatalf("code %d, want %d", e.Code, tc.code)
			}
		})
	}

	// Extra levels are the pipeline's business: copied, not judged.
	b.Subscribe("devices/" + d + "/replies/#")
	odd := "devices/" + d + "/commands/" + b.Route + "/k/extra"
	simtest.Publish(t, b.Link, mqttlink.Message{Topic: odd, Payload: []byte(`{"jsonrpc":"2.0","id":5,"method":"echo"}`), QoS: 1})
	brokertest.Eventually(t, wait, "no reply on the copied levels", func() bool {
		got := b.On("devices/" + d + "/replies/" + b.Route + "/k/extra")
		return len(got) == 1 && string(got[0].Payload) == `{"jsonrpc":"2.0","id":5,"result":null}`
	})
	// No level after commands/: run, but there is nowhere to reply.
	simtest.Publish(t, b.Link, mqttlink.Message{Topic: "devices/" + d + "/commands", Payload: []byte(`{"jsonrpc":"2.0","id":6,"method":"echo"}`), QoS: 1})

	statsAre(t, f, devicesim.Counters{Received: 11, Invalid: 9, Executed: 2, RepliesSent: 10, ErrorsReplied: 9, OddTopics: 2, NoReplyTopic: 1})
	if got := b.Call(d, `{"jsonrpc":"2.0","id":7,"method":"echo"}`); got != `{"jsonrpc":"2.0","id":7,"result":null}` {
		t.Fatalf("after hostile input, echo gave %s", got)
	}
}

func TestStatsAddUpPerDevice(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{Count: 2})
	b := simtest.NewBarista(t)
	one, two := f.ids[0], f.ids[1]
	key := b.Send(one, "", `{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	b.Replies(one, key, 1)
	b.Send(one, key, `{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	b.Replies(one, key, 2)
	b.Call(one, `{"jsonrpc":"2.0","id":2,"method":"fail"}`)
	b.Call(two, `garbage`)
	b.Silent(two, b.Send(two, "", `{"jsonrpc":"2.0","method":"echo"}`))

	statsAre(t, f, devicesim.Counters{Received: 6, Executed: 4, Duplicates: 1, Invalid: 1, Notifications: 1, RepliesSent: 5, ErrorsReplied: 2})
	s := f.Stats()
	wantOne := devicesim.Counters{Received: 3, Executed: 2, Duplicates: 1, RepliesSent: 3, ErrorsReplied: 1}
	wantTwo := devicesim.Counters{Received: 3, Executed: 2, Invalid: 1, Notifications: 1, RepliesSent: 2, ErrorsReplied: 1}
	if s.Devices[0].ID != one || s.Devices[0].Counters != wantOne || s.Devices[1].ID != two || s.Devices[1].Counters != wantTwo {
		t.Fatalf("per device\n got %+v\nwant %s %+v and %s %+v", s.Devices, one, wantOne, two, wantTwo)
	}
}

func TestStopCutsWorkShort(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{})
	b := simtest.NewBarista(t)
	d := f.ids[0]
	key := b.Send(d, "", `{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":60000}}`)
	b.Send(d, key, `{"jsonrpc":"2.0","id":1,"method":"sleep","params":{"ms":60000}}`)
	brokertest.Eventually(t, wait, "sleep not received", func() bool { return f.Stats().Totals.Duplicates == 1 })
	start := time.Now()
	f.stop()
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("stopping took %v with a long sleep in progress", took)
	}
	if got := f.Stats().Totals; got.Abandoned != 2 || got.RepliesSent != 0 {
		t.Fatalf("stats %+v: want the sleep and its repeat abandoned, nothing sent", got)
	}
}

func TestWaitOnlineMeansEveryDeviceAnswers(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{Count: 20})
	if got := f.Stats().Online; got != 20 {
		t.Fatalf("WaitOnline returned with %d of 20 devices online", got)
	}
	b := simtest.NewBarista(t)
	keys := map[string]string{}
	for _, id := range f.ids { // at once, no warm-up: the first command must not be lost
		keys[id] = b.Send(id, "", `{"jsonrpc":"2.0","id":1,"method":"echo"}`)
	}
	for id, key := range keys {
		b.Replies(id, key, 1)
	}
}

func TestWaitOnlineWaitsForRun(t *testing.T) {
	t.Parallel()
	f, err := devicesim.New(devicesim.Config{Count: 1, Pattern: brokertest.ID(t, "d") + "-%d"}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.WaitOnline(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitOnline before Run: %v, want the context's deadline", err)
	}
}
