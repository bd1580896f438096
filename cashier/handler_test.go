package cashier_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/registry"
)

// fakeQueue stands in for RabbitMQ in the pure-logic tests of the handler:
// it records what would have been published, or fails as told.
type fakeQueue struct {
	mu       sync.Mutex
	msgs     []amqp.Publishing
	keys     []string
	notReady bool
	failOn   func(amqp.Publishing) error
}

func (q *fakeQueue) Publish(_ context.Context, _, key string, m amqp.Publishing) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.failOn != nil {
		if err := q.failOn(m); err != nil {
			return err
		}
	}
	q.msgs = append(q.msgs, m)
	q.keys = append(q.keys, key)
	return nil
}

func (q *fakeQueue) Ready() bool { return !q.notReady }

func (q *fakeQueue) published() []amqp.Publishing {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]amqp.Publishing(nil), q.msgs...)
}

const (
	tokenApp1   = "token-app-1"
	tokenSlow   = "token-slow"
	registryDoc = `clients:
  - id: app-1
    token_sha256: %s
    devices: ["lamp-*", "door-7"]
  - id: slow
    token_sha256: %s
    devices: ["*"]
    rate: 0.001
    burst: 2
`
)

// registeredDevices are the devices the test registry knows: door-8 exists,
// but app-1 may not command it.
var registeredDevices = brokertest.DevicesYAML("lamp-1", "lamp-2", "lamp-", "door-7", "door-8")

func newServer(t *testing.T, q cashier.Queue, mutate ...func(*cashier.Config)) *cashier.Server {
	t.Helper()
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := newCashier(t, cfg, q)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newCashier makes a cashier of cfg on the test registry.
func newCashier(t *testing.T, cfg cashier.Config, q cashier.Queue) (*cashier.Server, error) {
	t.Helper()
	reg, err := registry.Parse(fmt.Appendf(nil, registryDoc+registeredDevices, hash(tokenApp1), hash(tokenSlow)))
	if err != nil {
		t.Fatal(err)
	}
	return cashier.New(cfg, reg, q, contracts.DefaultTopology(), prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

type call struct {
	method, path, token, body string
	headers                   map[string]string
	added                     http.Header // added after headers, so a header can be sent twice
}

func do(t *testing.T, s *cashier.Server, c call) (*http.Response, []byte) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodPost
	}
	r := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.headers {
		r.Header.Set(k, v)
	}
	for k, vs := range c.added {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

const one = `{"jsonrpc":"2.0","method":"on","params":{"level":3},"id":7}`

func TestSubmitAcceptsAndForwardsRawBytes(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	body := `{ "jsonrpc" : "2.0", "method":"on", "params": {"b":1,  "a":2}, "id":"x-1" }`
	before := time.Now()
	res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: body, headers: map[string]string{"Cafe-Timeout": "1500ms"}})
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	if string(out) != `{"client_id":"app-1","accepted":["x-1"],"notifications":0}` {
		t.Fatalf("202 body %s", out)
	}
	msgs := q.published()
	if len(msgs) != 1 {
		t.Fatalf("published %d messages", len(msgs))
	}
	m := msgs[0]
	if string(m.Body) != body {
		t.Fatalf("body changed on the way:\n got  %s\n want %s", m.Body, body)
	}
	meta, err := contracts.ParseCommandMeta(m.MessageId, m.Headers)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ClientID != "app-1" || meta.DeviceID != "lamp-1" || meta.MsgID != `"x-1"` {
		t.Fatalf("meta %+v", meta)
	}
	if d := meta.Deadline.Sub(meta.AcceptedAt); d != 1500*time.Millisecond {
		t.Fatalf("deadline is %v after arrival, want the Cafe-Timeout 1.5s", d)
	}
	if meta.AcceptedAt.Before(before.Add(-time.Second)) || meta.AcceptedAt.After(time.Now()) {
		t.Fatalf("accepted at %v, not the arrival time", meta.AcceptedAt)
	}
}

func TestSubmitDefaultTimeout(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q, func(c *cashier.Config) { c.DefaultTimeout = 42 * time.Second })
	if res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one}); res.StatusCode != 202 {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	meta, _ := contracts.ParseCommandMeta(q.published()[0].MessageId, q.published()[0].Headers)
	if d := meta.Deadline.Sub(meta.AcceptedAt); d != 42*time.Second {
		t.Fatalf("deadline %v after arrival, want the default 42s", d)
	}
}

func TestSubmitBatch(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	body := `[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b"},{"jsonrpc":"2.0","method":"c","id":"z"}]`
	res, out := do(t, s, call{path: "/v1/devices/door-7/commands", token: tokenApp1, body: body})
	if res.StatusCode != http.StatusAccepted || string(out) != `{"client_id":"app-1","accepted":[1,"z"],"notifications":1}` {
		t.Fatalf("status %d body %s", res.StatusCode, out)
	}
	msgs := q.published()
	if len(msgs) != 3 {
		t.Fatalf("published %d messages, want 3", len(msgs))
	}
	ids := map[string]bool{}
	for _, m := range msgs {
		if !strings.Contains(body, string(m.Body)) {
			t.Errorf("message body %s is not a slice of the batch", m.Body)
		}
		if ids[m.MessageId] {
			t.Errorf("command id %s used twice", m.MessageId)
		}
		ids[m.MessageId] = true
	}
}

func TestSubmitRejectsAndPublishesNothing(t *testing.T) {
	big := `{"jsonrpc":"2.0","method":"m","id":1,"params":{"pad":"` + strings.Repeat("x", 2000) + `"}}`
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   contracts.Code
		field  string
	}{
		{"no token", call{path: "/v1/devices/lamp-1/commands", body: one}, 401, contracts.CodeUnauthorized, "Authorization"},
		{"unknown token", call{path: "/v1/devices/lamp-1/commands", token: "nope", body: one}, 401, contracts.CodeUnauthorized, "Authorization"},
		{"basic auth", call{path: "/v1/devices/lamp-1/commands", body: one, headers: map[string]string{"Authorization": "Basic " + tokenApp1}}, 401, contracts.CodeUnauthorized, "Authorization"},
		{"two Authorization headers", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, added: http.Header{"Authorization": {"Bearer " + tokenSlow}}}, 400, contracts.CodeInvalidRequest, "Authorization"},
		{"not entitled", call{path: "/v1/devices/door-8/commands", token: tokenApp1, body: one}, 403, contracts.CodeForbidden, "deviceID"},
		{"not registered", call{path: "/v1/devices/lamp-9/commands", token: tokenApp1, body: one}, 404, contracts.CodeUnknownDevice, "deviceID"},
		{"not entitled and not registered", call{path: "/v1/devices/door-9/commands", token: tokenApp1, body: one}, 403, contracts.CodeForbidden, "deviceID"},
		{"device .", call{path: "/v1/devices/%2E/commands", token: tokenSlow, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"device ..", call{path: "/v1/devices/%2E%2E/commands", token: tokenSlow, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"device with wildcard", call{path: "/v1/devices/lamp-%2B/commands", token: tokenApp1, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"device with hash", call{path: "/v1/devices/lamp-%23/commands", token: tokenApp1, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"device with slash", call{path: "/v1/devices/lamp-1%2Fx/commands", token: tokenApp1, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"device too long", call{path: "/v1/devices/lamp-" + strings.Repeat("a", 130) + "/commands", token: tokenApp1, body: one}, 400, contracts.CodeInvalidRequest, "deviceID"},
		{"bad json", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: `{"jsonrpc":`}, 400, contracts.CodeParseError, ""},
		{"empty body", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: ``}, 400, contracts.CodeParseError, ""},
		{"bad envelope", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: `{"jsonrpc":"2.0","id":1}`}, 400, contracts.CodeInvalidRequest, "method"},
		{"batch with one bad", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: `[` + one + `,{"jsonrpc":"2.0","method":"m","id":null}]`}, 400, contracts.CodeInvalidRequest, "id"},
		{"timeout garbage", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Timeout": "soon"}}, 400, contracts.CodeInvalidRequest, "Cafe-Timeout"},
		{"timeout negative", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Timeout": "-5s"}}, 400, contracts.CodeInvalidRequest, "Cafe-Timeout"},
		{"timeout zero", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Timeout": "0s"}}, 400, contracts.CodeInvalidRequest, "Cafe-Timeout"},
		{"timeout over max", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Timeout": "11m"}}, 400, contracts.CodeInvalidRequest, "Cafe-Timeout"},
		{"too large", call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: big}, 413, contracts.CodeTooLarge, ""},
		{"batch larger than the burst", call{path: "/v1/devices/lamp-1/commands", token: tokenSlow, body: `[` + one + `,` + strings.Replace(one, "7", "8", 1) + `,` + strings.Replace(one, "7", "9", 1) + `]`}, 429, contracts.CodeRateLimited, "batch"},
		{"wrong method", call{method: http.MethodGet, path: "/v1/devices/lamp-1/commands", token: tokenApp1}, 405, contracts.CodeInvalidRequest, ""},
		{"unknown path", call{path: "/v1/lamps", token: tokenApp1, body: one}, 404, contracts.CodeInvalidRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &fakeQueue{}
			s := newServer(t, q, func(c *cashier.Config) { c.MaxBodyBytes = 1024 })
			res, out := do(t, s, tc.c)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, out)
			}
			var resp contracts.Response
			if err := json.Unmarshal(out, &resp); err != nil || resp.Error == nil {
				t.Fatalf("body is not a JSON-RPC error response: %s", out)
			}
			if resp.Error.Code != tc.code || string(resp.ID) != "null" || resp.JSONRPC != "2.0" {
				t.Fatalf("got %s, want code %d and id null", out, tc.code)
			}
			var d contracts.Detail
			_ = json.Unmarshal(resp.Error.Data, &d)
			if d.Field != tc.field || d.Reason == "" {
				t.Fatalf("data %s: want field %q and a reason", resp.Error.Data, tc.field)
			}
			if n := len(q.published()); n != 0 {
				t.Fatalf("a refused request published %d messages", n)
			}
			if tc.status == 429 && res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			if tc.status == 401 && res.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestSubmitOverTheRate(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	two := `[` + one + `,` + strings.Replace(one, "7", "8", 1) + `]`
	if res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenSlow, body: two}); res.StatusCode != 202 {
		t.Fatalf("a batch within the burst: %d %s", res.StatusCode, out)
	}
	res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenSlow, body: one})
	if res.StatusCode != 429 || res.Header.Get("Retry-After") == "" || !strings.Contains(string(out), "over its rate") {
		t.Fatalf("over the rate: %d %q %s", res.StatusCode, res.Header.Get("Retry-After"), out)
	}
	if n := len(q.published()); n != 2 {
		t.Fatalf("published %d, want only the first batch's 2", n)
	}
}

func TestSubmitLengthHeaderOverLimitIsRefusedUnread(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q, func(c *cashier.Config) { c.MaxBodyBytes = 1024 })
	r := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", strings.NewReader(one))
	r.Header.Set("Authorization", "Bearer "+tokenApp1)
	r.ContentLength = 1 << 30 // claims a gigabyte
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != 413 || len(q.published()) != 0 {
		t.Fatalf("status %d, published %d", w.Code, len(q.published()))
	}
}

func TestSubmitBrokerTrouble(t *testing.T) {
	for _, tc := range []struct {
		name   string
		q      *fakeQueue
		status int
	}{
		{"link down", &fakeQueue{notReady: true}, 503},
		{"nacked (queue full)", &fakeQueue{failOn: func(amqp.Publishing) error { return amqplink.ErrNacked }}, 503},
		{"confirm timeout", &fakeQueue{failOn: func(amqp.Publishing) error { return amqplink.ErrConfirmTimeout }}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, tc.q)
			res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one})
			if res.StatusCode != tc.status || res.Header.Get("Retry-After") != "1" {
				t.Fatalf("status %d Retry-After %q: %s", res.StatusCode, res.Header.Get("Retry-After"), out)
			}
			var resp contracts.Response
			if json.Unmarshal(out, &resp) != nil || resp.Error == nil || resp.Error.Code != contracts.CodeUnavailable {
				t.Fatalf("body %s", out)
			}
			if strings.Contains(string(out), "amqp") || strings.Contains(string(out), "message not confirmed") {
				t.Fatalf("503 body shows internals: %s", out)
			}
		})
	}
}

func TestSubmitPartialBatchNamesAcceptedAndRefused(t *testing.T) {
	q := &fakeQueue{failOn: func(m amqp.Publishing) error {
		if strings.Contains(string(m.Body), `"b"`) {
			return amqplink.ErrNacked
		}
		return nil
	}}
	s := newServer(t, q)
	body := `[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b","id":2},{"jsonrpc":"2.0","method":"b"}]`
	res, out := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: body})
	if res.StatusCode != 503 {
		t.Fatalf("status %d: %s", res.StatusCode, out)
	}
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32014,"message":"service unavailable","data":{` +
		`"reason":"the commands queue is full or RabbitMQ refused the command; not known to be queued, retry later",` +
		`"accepted":[1],"accepted_indexes":[0],"refused":[2,null],"refused_indexes":[1,2]}}}`
	if string(out) != want {
		t.Fatalf("body\n %s\nwant\n %s", out, want)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	if res, _ := do(t, s, call{method: http.MethodGet, path: "/healthz"}); res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	if res, _ := do(t, s, call{method: http.MethodGet, path: "/readyz"}); res.StatusCode != 200 {
		t.Fatalf("readyz with the queue ready: %d", res.StatusCode)
	}
	q.notReady = true
	if res, _ := do(t, s, call{method: http.MethodGet, path: "/readyz"}); res.StatusCode != 503 {
		t.Fatalf("readyz with the queue down: %d", res.StatusCode)
	}
	do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one})
	res, out := do(t, s, call{method: http.MethodGet, path: "/metrics"})
	if res.StatusCode != 200 || !strings.Contains(string(out), `cafe_cashier_http_requests_total{code="503"} 1`) ||
		!strings.Contains(string(out), "cafe_cashier_publish_confirm_seconds") {
		t.Fatalf("metrics %d:\n%s", res.StatusCode, out)
	}
}

func TestPprofOnlyWhenEnabled(t *testing.T) {
	if res, _ := do(t, newServer(t, &fakeQueue{}), call{method: http.MethodGet, path: "/debug/pprof/"}); res.StatusCode != 404 {
		t.Fatalf("pprof served without the flag: %d", res.StatusCode)
	}
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.Pprof = true })
	if res, _ := do(t, s, call{method: http.MethodGet, path: "/debug/pprof/"}); res.StatusCode != 200 {
		t.Fatalf("pprof with the flag: %d", res.StatusCode)
	}
}

func TestRegistrySwap(t *testing.T) {
	s := newServer(t, &fakeQueue{})
	reg, err := registry.Parse([]byte("clients:\n  - id: new\n    token_sha256: " + hash("new-token") + "\n    devices: [\"*\"]\n" + registeredDevices))
	if err != nil {
		t.Fatal(err)
	}
	s.SetRegistry(reg)
	if res, _ := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one}); res.StatusCode != 401 {
		t.Fatalf("old token after swap: %d", res.StatusCode)
	}
	if res, _ := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: "new-token", body: one}); res.StatusCode != 202 {
		t.Fatalf("new token after swap: %d", res.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*cashier.Config)
	}{
		{"body over 1 MiB", func(c *cashier.Config) { c.MaxBodyBytes = 2 << 20 }},
		{"zero batch", func(c *cashier.Config) { c.MaxBatch = 0 }},
		{"default over max", func(c *cashier.Config) { c.DefaultTimeout = time.Hour }},
		{"max over consumer timeout", func(c *cashier.Config) { c.MaxTimeout = time.Hour }},
		{"sub-second retry-after", func(c *cashier.Config) { c.RetryAfter = time.Millisecond }},
		{"no address", func(c *cashier.Config) { c.Addr = "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cashier.Defaults()
			tc.mutate(&c)
			if c.Validate() == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := cashier.Defaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

// hash is the registry's form of a token: its hex SHA-256.
func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}
