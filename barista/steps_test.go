package barista_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/brokertest"
)

var quiet = brokertest.Quiet

func command(t *testing.T, raw string, deadline time.Time) *barista.Command {
	t.Helper()
	req, err := contracts.ParseRequest([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &barista.Command{
		Meta: contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
			MsgID: string(req.ID), Deadline: deadline, AcceptedAt: time.Now()},
		Request: req,
	}
}

// errorOf decodes a result body as an error response.
func errorOf(t *testing.T, res barista.Result) (id string, e *contracts.Error) {
	t.Helper()
	var r contracts.Response
	if err := json.Unmarshal(res.Body, &r); err != nil || r.Error == nil {
		t.Fatalf("result %s is not an error response", res.Body)
	}
	return string(r.ID), r.Error
}

// reached records whether the next handler ran.
func reached(called *bool, res barista.Result) barista.Handler {
	return func(context.Context, *barista.Command) (barista.Result, error) {
		*called = true
		return res, nil
	}
}

var replied = barista.Result{Body: []byte(`{"jsonrpc":"2.0","id":1,"result":true}`), Outcome: contracts.OutcomeReply}

func TestDeadline(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	t.Run("expired: error with the app's id, next not called", func(t *testing.T) {
		var called bool
		h := barista.Deadline(clock, time.Hour)(reached(&called, replied))
		res, err := h(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m","id":"a-1"}`, now.Add(-time.Second)))
		if err != nil || called {
			t.Fatalf("err %v, next called %v", err, called)
		}
		id, e := errorOf(t, res)
		if id != `"a-1"` || e.Code != contracts.CodeExpired || res.Outcome != contracts.OutcomeExpired {
			t.Fatalf("id %s code %d outcome %s", id, e.Code, res.Outcome)
		}
	})
	t.Run("exactly at the deadline is expired", func(t *testing.T) {
		var called bool
		res, _ := barista.Deadline(clock, time.Hour)(reached(&called, replied))(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, now))
		if called || res.Outcome != contracts.OutcomeExpired {
			t.Fatalf("called %v outcome %s", called, res.Outcome)
		}
	})
	t.Run("one-way expired: no body", func(t *testing.T) {
		var called bool
		res, _ := barista.Deadline(clock, time.Hour)(reached(&called, replied))(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m"}`, now.Add(-time.Second)))
		if called || res.Body != nil || res.Outcome != contracts.OutcomeExpired {
			t.Fatalf("called %v body %s outcome %s", called, res.Body, res.Outcome)
		}
	})
	t.Run("in time: next runs bounded by the deadline", func(t *testing.T) {
		deadline := now.Add(time.Minute)
		var got time.Time
		h := barista.Deadline(clock, time.Hour)(func(ctx context.Context, _ *barista.Command) (barista.Result, error) {
			got, _ = ctx.Deadline()
			return replied, nil
		})
		if res, err := h(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, deadline)); err != nil || res.Outcome != contracts.OutcomeReply {
			t.Fatal(err)
		}
		if !got.Equal(deadline) {
			t.Fatalf("context deadline %v, want the command's %v", got, deadline)
		}
	})
	t.Run("a deadline past the cap is capped", func(t *testing.T) {
		var got time.Time
		h := barista.Deadline(clock, time.Minute)(func(ctx context.Context, _ *barista.Command) (barista.Result, error) {
			got, _ = ctx.Deadline()
			return replied, nil
		})
		if _, err := h(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, now.Add(365*24*time.Hour))); err != nil {
			t.Fatal(err)
		}
		if want := now.Add(time.Minute); !got.Equal(want) {
			t.Fatalf("context deadline %v, want the cap %v", got, want)
		}
	})
}

func TestRecover(t *testing.T) {
	h := barista.Recover(quiet())(func(context.Context, *barista.Command) (barista.Result, error) { panic("boom") })
	if _, err := h(context.Background(), command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, time.Now().Add(time.Minute))); err == nil {
		t.Fatal("a panic did not become an error (the command must go back to the queue)")
	}
}

func TestPresence(t *testing.T) {
	invalid := 0
	p := barista.NewPresence(quiet(), func() { invalid++ })
	var called bool
	h := barista.CheckPresence(p)(reached(&called, replied))
	cmd := command(t, `{"jsonrpc":"2.0","method":"m","id":7}`, time.Now().Add(time.Minute))

	steps := []struct {
		name       string
		topic      string
		payload    string
		offline    bool
		invalidNow int
	}{
		{"unknown device is tried", "", "", false, 0},
		{"offline", "devices/lamp-1/presence", `{"online":false}`, true, 0},
		{"garbage keeps what was known", "devices/lamp-1/presence", `not json`, true, 1},
		{"string online keeps what was known", "devices/lamp-1/presence", `{"online":"yes"}`, true, 2},
		{"oversized keeps what was known", "devices/lamp-1/presence", `{"online":true,"pad":"` + string(make([]byte, 5000)) + `"}`, true, 3},
		{"other device does not matter", "devices/lamp-2/presence", `{"online":true}`, true, 3},
		{"bad topic counted", "devices/a/b/presence", `{"online":true}`, true, 4},
		{"online with extra fields", "devices/lamp-1/presence", `{"online":true,"fw":"2"}`, false, 4},
		{"offline again", "devices/lamp-1/presence", `{"online":false}`, true, 4},
		{"cleared retained message: unknown again", "devices/lamp-1/presence", ``, false, 4},
	}
	for _, s := range steps {
		if s.topic != "" {
			p.OnMessage(s.topic, []byte(s.payload))
		}
		called = false
		res, err := h(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		if s.offline {
			if called || res.Outcome != contracts.OutcomeOffline {
				t.Fatalf("%s: called %v outcome %s", s.name, called, res.Outcome)
			}
			if id, e := errorOf(t, res); id != "7" || e.Code != contracts.CodeDeviceOffline {
				t.Fatalf("%s: id %s code %d", s.name, id, e.Code)
			}
		} else if !called {
			t.Fatalf("%s: command not sent", s.name)
		}
		if invalid != s.invalidNow {
			t.Fatalf("%s: %d invalid presence messages counted, want %d", s.name, invalid, s.invalidNow)
		}
	}
}

func TestBreaker(t *testing.T) {
	var changes []gobreaker.State
	b := barista.NewBreakers(barista.BreakerConfig{Failures: 3, OpenFor: 100 * time.Millisecond}, time.Now,
		func(_ string, to gobreaker.State) { changes = append(changes, to) })
	outcome := contracts.OutcomeTimeout
	calls := 0
	h := barista.Guard(b)(func(context.Context, *barista.Command) (barista.Result, error) {
		calls++
		return barista.Result{Outcome: outcome}, nil
	})
	cmd := command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, time.Now().Add(time.Minute))
	run := func() barista.Result {
		res, err := h(context.Background(), cmd)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// The device's own error replies never trip it.
	outcome = contracts.OutcomeReply
	for range 10 {
		run()
	}
	outcome = contracts.OutcomeBadReply
	for range 10 {
		run()
	}
	if s := b.State("lamp-1"); s != gobreaker.StateClosed {
		t.Fatalf("replies tripped the breaker: %v", s)
	}
	// Three timeouts in a row open it; then commands fail fast.
	outcome = contracts.OutcomeTimeout
	for range 3 {
		if res := run(); res.Outcome != contracts.OutcomeTimeout {
			t.Fatalf("outcome %s", res.Outcome)
		}
	}
	if n := b.Open(); n != 1 {
		t.Fatalf("%d breakers open, want 1 (cafe_barista_breakers_open)", n)
	}
	before := calls
	res := run()
	if calls != before {
		t.Fatal("an open breaker let the command through")
	}
	if _, e := errorOf(t, res); e.Code != contracts.CodeDeviceUnreachable {
		t.Fatalf("code %d, want device unreachable", e.Code)
	}
	// Other devices are not affected.
	other := command(t, `{"jsonrpc":"2.0","method":"m","id":2}`, time.Now().Add(time.Minute))
	other.Meta.DeviceID = "lamp-2"
	outcome = contracts.OutcomeReply
	if res, _ := h(context.Background(), other); res.Outcome != contracts.OutcomeReply {
		t.Fatalf("another device failed fast: %s", res.Outcome)
	}
	// After OpenFor one trial goes through; a reply closes it again.
	deadline := time.Now().Add(5 * time.Second)
	for b.State("lamp-1") == gobreaker.StateOpen && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if res := run(); res.Outcome != contracts.OutcomeReply {
		t.Fatalf("trial after the open period: %s", res.Outcome)
	}
	if s := b.State("lamp-1"); s != gobreaker.StateClosed || b.Open() != 0 {
		t.Fatalf("state after a successful trial: %v, %d open", s, b.Open())
	}
	if len(changes) != 3 || changes[0] != gobreaker.StateOpen || changes[1] != gobreaker.StateHalfOpen || changes[2] != gobreaker.StateClosed {
		t.Fatalf("state changes %v", changes)
	}
}

func TestBreakerHandBackIsNeutral(t *testing.T) {
	b := barista.NewBreakers(barista.BreakerConfig{Failures: 1}, time.Now, nil)
	h := barista.Guard(b)(func(context.Context, *barista.Command) (barista.Result, error) {
		return barista.Result{}, errors.New("shutting down")
	})
	cmd := command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, time.Now().Add(time.Minute))
	for range 5 {
		if _, err := h(context.Background(), cmd); err == nil {
			t.Fatal("hand-back error lost")
		}
	}
	if s := b.State("lamp-1"); s != gobreaker.StateClosed {
		t.Fatalf("hand-backs tripped the breaker: %v", s)
	}
}

func TestBreakerSweepForgetsIdleClosed(t *testing.T) {
	now := time.Now()
	b := barista.NewBreakers(barista.BreakerConfig{Failures: 1, IdleTTL: time.Minute}, func() time.Time { return now }, nil)
	h := barista.Guard(b)(func(_ context.Context, c *barista.Command) (barista.Result, error) {
		if c.Meta.DeviceID == "bad" {
			return barista.Result{Outcome: contracts.OutcomeTimeout}, nil
		}
		return replied, nil
	})
	for _, d := range []string{"a", "b", "bad"} {
		cmd := command(t, `{"jsonrpc":"2.0","method":"m","id":1}`, now.Add(time.Hour))
		cmd.Meta.DeviceID = d
		_, _ = h(context.Background(), cmd)
	}
	if n := b.Sweep(); n != 3 {
		t.Fatalf("%d breakers after a sweep with nothing idle", n)
	}
	now = now.Add(2 * time.Minute)
	if n := b.Sweep(); n != 1 || b.State("bad") != gobreaker.StateOpen {
		t.Fatalf("%d breakers left; want only the open one", n)
	}
}

func TestReplies(t *testing.T) {
	strays := map[string]int{}
	r := barista.NewReplies("b-1", quiet(), func(reason string) { strays[reason]++ })
	ch, done := r.Expect("k1", "lamp-1")
	defer done()

	r.OnMessage("devices/lamp-2/replies/b-1/k1", []byte("from the wrong device"))
	r.OnMessage("devices/lamp-1/replies/b-2/k1", []byte("for another barista"))
	r.OnMessage("devices/lamp-1/replies/b-1/nope", []byte("unknown key"))
	r.OnMessage("devices/lamp-1/replies/b-1", []byte("bad topic"))
	r.OnMessage("devices/lamp-1/replies/b-1/k1", []byte("first"))
	r.OnMessage("devices/lamp-1/replies/b-1/k1", []byte("repeat"))
	select {
	case got := <-ch:
		if string(got) != "first" {
			t.Fatalf("got %q", got)
		}
	default:
		t.Fatal("reply not routed")
	}
	want := map[string]int{"wrong_device": 1, "bad_topic": 2, "unknown_key": 1, "repeat": 1}
	for k, v := range want {
		if strays[k] != v {
			t.Errorf("stray %s: %d, want %d (all: %v)", k, strays[k], v, strays)
		}
	}
	done()
	if r.Waiting() != 0 {
		t.Fatal("done did not forget the command")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  barista.Config
		want contracts.Setting // the setting the error must name
	}{
		{"route with a slash", barista.Config{Route: "a/b"}, barista.SettingRoute},
		{"negative concurrency", barista.Config{Route: "ok", Concurrency: -1}, barista.SettingConcurrency},
		{"concurrency over the prefetch field", barista.Config{Route: "ok", Concurrency: 70000}, barista.SettingConcurrency},
		{"negative grace", barista.Config{Route: "ok", Grace: -time.Second}, barista.SettingGrace},
		{"negative breaker failures", barista.Config{Route: "ok", Breaker: barista.BreakerConfig{Failures: -1}}, barista.SettingBreakerFailures},
		{"reply limit over the body limit", barista.Config{Route: "ok", MaxReplyBytes: contracts.MaxBodyBytes + 1}, barista.SettingMaxReplyBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := barista.New(tc.cfg, contracts.DefaultTopology(), barista.Links{}, nil, quiet())
			if got := contracts.InvalidSettings(err); !slices.Contains(got, tc.want) {
				t.Fatalf("got %v (settings %v), want an error naming %s", err, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want.Env) {
				t.Errorf("error %q does not name %s", err, tc.want.Env)
			}
		})
	}
}
