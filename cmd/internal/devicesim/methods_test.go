package devicesim

import (
	"encoding/json"
	"testing"
	"time"

	"cafe/contracts"
)

func TestSleepParams(t *testing.T) {
	maxMS := int64(MaxSleep / time.Millisecond)
	for _, tc := range []struct {
		name   string
		params string
		want   int64
		ok     bool
	}{
		{"object", `{"ms":25}`, 25, true},
		{"array", `[25]`, 25, true},
		{"zero", `{"ms":0}`, 0, true},
		{"exponent", `{"ms":1e2}`, 100, true},
		{"capped", `{"ms":3600000}`, maxMS, true},
		{"huge capped", `[1e400]`, maxMS, true},
		{"absent", ``, 0, false},
		{"negative", `{"ms":-1}`, 0, false},
		{"fraction", `{"ms":1.5}`, 0, false},
		{"string", `{"ms":"10"}`, 0, false},
		{"missing ms", `{"msec":10}`, 0, false},
		{"empty array", `[]`, 0, false},
		{"two elements", `[1,2]`, 0, false},
		{"null", `[null]`, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p []byte
			if tc.params != "" {
				p = []byte(tc.params)
			}
			got, reason := sleepParams(p)
			if (reason == "") != tc.ok || got != tc.want {
				t.Fatalf("got %d %q, want %d ok=%v", got, reason, tc.want, tc.ok)
			}
		})
	}
}

func TestResponses(t *testing.T) {
	for _, tc := range []struct {
		name, method, params, id, want string
		busy                           time.Duration
	}{
		{"echo keeps bytes", "echo", `{"b": [1, 2],"a":"<&>"}`, `7`, `{"jsonrpc":"2.0","id":7,"result":{"b": [1, 2],"a":"<&>"}}`, 0},
		{"echo without params", "echo", ``, `"x-1"`, `{"jsonrpc":"2.0","id":"x-1","result":null}`, 0},
		{"sleep", "sleep", `[5]`, `1`, `{"jsonrpc":"2.0","id":1,"result":{"slept_ms":5}}`, 5 * time.Millisecond},
		{"sleep bad", "sleep", `{"ms":-5}`, `1`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Invalid params","data":{"field":"params","reason":"sleep takes {\"ms\":N} or [N], N a whole number of milliseconds \u003e= 0"}}}`, 0},
		{"fail with data", "fail", `{"why": "<x>"}`, `2`, `{"jsonrpc":"2.0","id":2,"error":{"code":1000,"message":"simulated failure","data":{"why": "<x>"}}}`, 0},
		{"fail without data", "fail", ``, `2`, `{"jsonrpc":"2.0","id":2,"error":{"code":1000,"message":"simulated failure"}}`, 0},
		{"unknown", "launch", ``, `3`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found","data":{"field":"method","reason":"the simulated device knows echo, sleep, fail and never"}}}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p []byte
			if tc.params != "" {
				p = []byte(tc.params)
			}
			o, busy := plan(tc.method, p)
			got := string(response([]byte(tc.id), o))
			if got != tc.want || busy != tc.busy {
				t.Fatalf("got %s after %v\nwant %s after %v", got, busy, tc.want, tc.busy)
			}
			if err := contracts.CheckReply([]byte(got), []byte(tc.id)); err != nil {
				t.Fatalf("the pipeline would refuse this reply: %v", err)
			}
		})
	}
	if o, _ := plan("never", nil); !o.silent {
		t.Error("never is not silent")
	}
}

func TestMethodDecodesEscapes(t *testing.T) {
	req, err := contracts.ParseRequest([]byte(`{"jsonrpc":"2.0","id":1,"method":"ech\u006f","params":[1]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := method(req); got != "echo" {
		t.Fatalf("method %q, want echo", got)
	}
	if got := string(params(req)); got != "[1]" {
		t.Fatalf("params %s, want [1]", got)
	}
}

func TestRepeatKey(t *testing.T) {
	for _, tc := range []struct{ topic, want string }{
		{"devices/d/commands/r/k", "k"},
		{"devices/d/commands/k", "k"},
		{"devices/d/commands/a/b/c", "c"},
		{"devices/d/commands", ""},
		{"devices/d/commands/", ""},
		{"devices/d/commands/r/", ""},
		{"devices/d/replies/r/k", ""},
		{"elsewhere", ""},
	} {
		if got := repeatKey(tc.topic); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.topic, got, tc.want)
		}
	}
}

func TestStatsJSONNames(t *testing.T) {
	b, err := json.Marshal(Stats{Devices: []DeviceStats{{ID: "d", Counters: Counters{RepliesSent: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	dev := back["devices"].([]any)[0].(map[string]any)
	if dev["id"] != "d" || dev["replies_sent"] != 2.0 {
		t.Fatalf("device line %v: want id and flattened snake_case counters", dev)
	}
	for _, k := range []string{"received", "executed", "failures_injected", "duplicates", "invalid", "dropped",
		"notifications", "replies_sent", "errors_replied", "reply_failures", "abandoned", "odd_topics", "no_reply_topic"} {
		if _, ok := back["totals"].(map[string]any)[k]; !ok {
			t.Errorf("totals lack %q", k)
		}
	}
}
