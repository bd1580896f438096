package contracts_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
)

func TestCheckReply(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reply  string
		wantID string
		ok     bool
	}{
		{"result", `{"jsonrpc":"2.0","id":7,"result":{"x":1}}`, `7`, true},
		{"null result", `{"jsonrpc":"2.0","id":7,"result":null}`, `7`, true},
		{"device error", `{"jsonrpc":"2.0","id":"a","error":{"code":1001,"message":"jammed","data":[1]}}`, `"a"`, true},
		{"string id escaped", `{"jsonrpc":"2.0","id":"\u0061","result":1}`, `"a"`, true},
		{"number written as float", `{"jsonrpc":"2.0","id":7.0,"result":1}`, `7`, true},
		{"extra members", `{"jsonrpc":"2.0","id":7,"result":1,"meta":{}}`, `7`, true},
		{"wrong id", `{"jsonrpc":"2.0","id":8,"result":1}`, `7`, false},
		{"exponent form", `{"jsonrpc":"2.0","id":70e-1,"result":1}`, `7`, true},
		{"large ids differing beyond float precision", `{"jsonrpc":"2.0","id":9007199254740992,"result":1}`, `9007199254740993`, false},
		{"19-digit ids differing in the last digit", `{"jsonrpc":"2.0","id":1234567890123456788,"result":1}`, `1234567890123456789`, false},
		{"string for number", `{"jsonrpc":"2.0","id":"7","result":1}`, `7`, false},
		{"number for string", `{"jsonrpc":"2.0","id":7,"result":1}`, `"7"`, false},
		{"null id", `{"jsonrpc":"2.0","id":null,"result":1}`, `7`, false},
		{"missing id", `{"jsonrpc":"2.0","result":1}`, `7`, false},
		{"missing jsonrpc", `{"id":7,"result":1}`, `7`, false},
		{"old jsonrpc", `{"jsonrpc":"1.0","id":7,"result":1}`, `7`, false},
		{"neither", `{"jsonrpc":"2.0","id":7}`, `7`, false},
		{"both", `{"jsonrpc":"2.0","id":7,"result":1,"error":{"code":1,"message":"x"}}`, `7`, false},
		{"error not object", `{"jsonrpc":"2.0","id":7,"error":"boom"}`, `7`, false},
		{"error without code", `{"jsonrpc":"2.0","id":7,"error":{"message":"x"}}`, `7`, false},
		{"error fractional code", `{"jsonrpc":"2.0","id":7,"error":{"code":1.5,"message":"x"}}`, `7`, false},
		{"error without message", `{"jsonrpc":"2.0","id":7,"error":{"code":1}}`, `7`, false},
		{"duplicate result", `{"jsonrpc":"2.0","id":7,"result":1,"result":2}`, `7`, false},
		{"not json", `{"jsonrpc":"2.0",`, `7`, false},
		{"array", `[{"jsonrpc":"2.0","id":7,"result":1}]`, `7`, false},
		{"empty", ``, `7`, false},
		{"invalid utf8", "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"\xff\"}", `7`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := contracts.CheckReply([]byte(tc.reply), []byte(tc.wantID))
			if tc.ok && err != nil {
				t.Fatalf("got %v, want ok", err)
			}
			if !tc.ok {
				if !errors.Is(err, contracts.CodeBadDeviceReply) {
					t.Fatalf("got %v, want a bad-device-reply error", err)
				}
				var e *contracts.Error
				errors.As(err, &e)
				var d contracts.Detail
				if json.Unmarshal(e.Data, &d) != nil || d.Reason == "" {
					t.Fatalf("error data %s has no reason", e.Data)
				}
			}
		})
	}
}

func FuzzCheckReply(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":7,"result":{"x":1}}`), []byte(`7`))
	f.Add([]byte(`{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}`), []byte(`"a"`))
	f.Fuzz(func(t *testing.T, reply, id []byte) {
		err := contracts.CheckReply(reply, id)
		if err != nil && !errors.Is(err, contracts.CodeBadDeviceReply) {
			t.Fatalf("unexpected error type: %v", err)
		}
		if err == nil {
			var r contracts.Response
			if json.Unmarshal(reply, &r) != nil || r.JSONRPC != "2.0" || (r.Result == nil) == (r.Error == nil) && string(r.Result) != "null" {
				t.Fatalf("accepted %q, which does not decode as a response", reply)
			}
		}
	})
}

func TestParsePresence(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload string
		online  bool
		ok      bool
	}{
		{"online", `{"online":true}`, true, true},
		{"offline", `{"online": false}`, false, true},
		{"extra fields", `{"online":true,"fw":"1.2","since":123}`, true, true},
		{"cleared", ``, false, false},
		{"string online", `{"online":"true"}`, false, false},
		{"missing", `{"status":"up"}`, false, false},
		{"not json", `online`, false, false},
		{"array", `[true]`, false, false},
		{"oversized", `{"online":true,"pad":"` + strings.Repeat("x", contracts.MaxPresenceBytes) + `"}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			online, err := contracts.ParsePresence([]byte(tc.payload))
			if (err == nil) != tc.ok || online != tc.online {
				t.Fatalf("got %v, %v; want %v, ok %v", online, err, tc.online, tc.ok)
			}
		})
	}
	if _, err := contracts.ParsePresence(nil); !errors.Is(err, contracts.ErrPresenceCleared) {
		t.Fatalf("empty payload: got %v, want ErrPresenceCleared", err)
	}
}

func TestErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   string
		want string
	}{
		{"number id keeps its type", `7`, `{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"device offline","data":{"reason":"r"}}}`},
		{"string id keeps its type", `"7"`, `{"jsonrpc":"2.0","id":"7","error":{"code":-32000,"message":"device offline","data":{"reason":"r"}}}`},
		{"no id is null", ``, `{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"device offline","data":{"reason":"r"}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := contracts.ErrorResponse([]byte(tc.id), contracts.NewError(contracts.CodeDeviceOffline, contracts.Detail{Reason: "r"}))
			if string(got) != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestErrorMatching(t *testing.T) {
	err := error(contracts.NewError(contracts.CodeDeviceTimeout, nil))
	wrapped := errors.Join(errors.New("context"), err)
	if !errors.Is(wrapped, contracts.CodeDeviceTimeout) {
		t.Error("errors.Is does not find the code through a wrap")
	}
	if errors.Is(wrapped, contracts.CodeDeviceOffline) {
		t.Error("errors.Is matches a different code")
	}
	if !errors.Is(err, contracts.NewError(contracts.CodeDeviceTimeout, "other data")) {
		t.Error("two errors with the same code do not match")
	}
	seen := map[string]contracts.Code{}
	for _, c := range []contracts.Code{contracts.CodeDeviceOffline, contracts.CodeDeviceTimeout, contracts.CodeExpired,
		contracts.CodeDeviceUnreachable, contracts.CodeBadDeviceReply, contracts.CodeUnauthorized, contracts.CodeForbidden,
		contracts.CodeTooLarge, contracts.CodeRateLimited, contracts.CodeUnavailable} {
		if c > -32000 || c < -32099 {
			t.Errorf("pipeline code %d is outside -32000..-32099", c)
		}
		if prev, dup := seen[c.Message()]; dup {
			t.Errorf("codes %d and %d share the message %q", prev, c, c.Message())
		}
		seen[c.Message()] = c
	}
}

func TestCommandMetaRoundTrip(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	m := contracts.CommandMeta{
		CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1",
		MsgID: `"a-1"`, Deadline: now.Add(time.Second), AcceptedAt: now,
	}
	got, err := contracts.ParseCommandMeta(m.CommandID, m.Headers())
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("got %+v, want %+v", got, m)
	}
}

// legacyHeaders are a command's headers in the older form, one header per
// field, which the parsers still read (messages queued by earlier
// versions, dead letters).
func legacyHeaders(m contracts.CommandMeta) map[string]any {
	h := map[string]any{
		contracts.HeaderClientID: m.ClientID, contracts.HeaderDeviceID: m.DeviceID,
		contracts.HeaderDeadline: m.Deadline.UnixNano(), contracts.HeaderAcceptedAt: m.AcceptedAt.UnixNano(),
	}
	if m.MsgID != "" {
		h[contracts.HeaderMsgID] = m.MsgID
	}
	return h
}

func TestCommandMetaLegacyHeaders(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	m := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"a 1"`, Deadline: now.Add(time.Second), AcceptedAt: now}
	got, err := contracts.ParseCommandMeta(m.CommandID, legacyHeaders(m))
	if err != nil || got != m {
		t.Fatalf("got %+v, %v; want %+v", got, err, m)
	}
	if r := contracts.ReadMeta(legacyHeaders(m)); r.ClientID != m.ClientID || r.MsgID != m.MsgID || !r.Deadline.Equal(m.Deadline) {
		t.Errorf("ReadMeta(legacy) = %+v, want %+v", r, m)
	}
	res := contracts.ResultHeaders(legacyHeaders(m), contracts.OutcomeReply)
	if rm, err := contracts.ParseResultMeta(m.CommandID, res); err != nil || rm.ClientID != m.ClientID || rm.MsgID != m.MsgID || rm.Outcome != contracts.OutcomeReply {
		t.Errorf("result of a legacy command: %+v, %v", rm, err)
	}
}

func TestParseCommandMetaRejectsHostilePackedHeader(t *testing.T) {
	id := contracts.NewCommandID()
	for _, tc := range []struct {
		name string
		meta any
	}{
		{"not a string", []byte("app-1 lamp-1 1 2 7")},
		{"empty", ""},
		{"four fields", "app-1 lamp-1 1 2"},
		{"client with slash", "a/b lamp-1 1 2 7"},
		{"client empty", " lamp-1 1 2 7"},
		{"device wildcard", "app-1 # 1 2 7"},
		{"accepted a word", "app-1 lamp-1 soon 2 7"},
		{"deadline negative", "app-1 lamp-1 1 -2 7"},
		{"deadline zero", "app-1 lamp-1 1 0 7"},
		{"two spaces", "app-1  lamp-1 1 2 7"},
		{"msg id too long", "app-1 lamp-1 1 2 " + strings.Repeat("7", contracts.MaxStringIDLen+3)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := contracts.ParseCommandMeta(id, map[string]any{contracts.HeaderMeta: tc.meta}); !errors.Is(err, contracts.ErrBadMeta) {
				t.Fatalf("got %v, want ErrBadMeta", err)
			}
		})
	}
}

func TestParseCommandMetaRejectsHostileHeaders(t *testing.T) {
	good := func() map[string]any {
		return legacyHeaders(contracts.CommandMeta{ClientID: "app-1", DeviceID: "lamp-1", Deadline: time.Now(), AcceptedAt: time.Now()})
	}
	id := contracts.NewCommandID()
	for _, tc := range []struct {
		name   string
		msgID  string
		mutate func(map[string]any)
	}{
		{"no headers", id, func(h map[string]any) { clear(h) }},
		{"missing client", id, func(h map[string]any) { delete(h, contracts.HeaderClientID) }},
		{"client with slash", id, func(h map[string]any) { h[contracts.HeaderClientID] = "a/b" }},
		{"client not a string", id, func(h map[string]any) { h[contracts.HeaderClientID] = int64(5) }},
		{"device wildcard", id, func(h map[string]any) { h[contracts.HeaderDeviceID] = "#" }},
		{"deadline a string", id, func(h map[string]any) { h[contracts.HeaderDeadline] = "tomorrow" }},
		{"deadline negative", id, func(h map[string]any) { h[contracts.HeaderDeadline] = int64(-1) }},
		{"msg id not a string", id, func(h map[string]any) { h[contracts.HeaderMsgID] = []byte("x") }},
		{"message id missing", "", func(map[string]any) {}},
		{"message id hostile", "../../x", func(map[string]any) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := good()
			tc.mutate(h)
			if _, err := contracts.ParseCommandMeta(tc.msgID, h); !errors.Is(err, contracts.ErrBadMeta) {
				t.Fatalf("got %v, want ErrBadMeta", err)
			}
		})
	}
}

func TestTopologyArgs(t *testing.T) {
	top := contracts.DefaultTopology()
	if err := top.Validate(); err != nil {
		t.Fatal(err)
	}
	args := top.QueueArgs(top.CommandsQueue())
	for k, want := range map[string]any{
		"x-queue-type": "quorum", "x-overflow": "reject-publish", "x-dead-letter-strategy": "at-least-once",
		"x-dead-letter-exchange": "cafe.dead", "x-delivery-limit": int64(contracts.DefaultDeliveryLimit),
		"x-max-length": int64(contracts.DefaultCommandsMaxLength),
	} {
		if args[k] != want {
			t.Errorf("%s: got %v, want %v", k, args[k], want)
		}
	}
	top.CommandsMaxLength = 0
	if _, limited := top.QueueArgs(top.CommandsQueue())["x-max-length"]; limited {
		t.Error("max length 0 still sets x-max-length")
	}
	for _, bad := range []contracts.Topology{
		{Prefix: "", DeliveryLimit: 1},
		{Prefix: "a b", DeliveryLimit: 1},
		{Prefix: "ok", DeliveryLimit: 0},
		{Prefix: "ok", DeliveryLimit: 1, CommandsMaxLength: -1},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// An unrecorded topology (no ledger) declares the events queue with no
// binding, so RabbitMQ copies nothing into it; every other queue is bound
// as before, and the queue list is the same (the roles check it).
func TestTopologyUnrecordedBindsNoEvents(t *testing.T) {
	full := contracts.DefaultTopology()
	top := full
	top.Unrecorded = true
	if len(top.Queues()) != len(full.Queues()) {
		t.Fatalf("%d queues, want the %d of the recorded topology", len(top.Queues()), len(full.Queues()))
	}
	for i, q := range top.Queues() {
		f := full.Queues()[i]
		if q.Name != f.Name || len(q.Args) != len(f.Args) {
			t.Errorf("queue %d: %s with %v, want %s with %v", i, q.Name, q.Args, f.Name, f.Args)
		}
		switch {
		case q.Name == top.EventsQueue() && len(q.Bindings()) != 0:
			t.Errorf("events queue bound %v: RabbitMQ would copy every command into it", q.Bindings())
		case q.Name == top.EventsQueue() && len(f.Bindings()) != 5:
			t.Errorf("recorded events queue bound %v, want its exchange, the three copies and the refusals", f.Bindings())
		case q.Name != top.EventsQueue() && !slices.Equal(q.Bindings(), f.Bindings()):
			t.Errorf("queue %s bound %v, want %v", q.Name, q.Bindings(), f.Bindings())
		}
	}
}
