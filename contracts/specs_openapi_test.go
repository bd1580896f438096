package contracts_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// ---------------------------------------------------------------------------
// OpenAPI: the route and the examples, against ParseBody and the cashier

const (
	commandsPath  = "/v1/devices/{deviceID}/commands"
	exampleClient = "app-1"
	exampleToken  = "app-1-token"
	// exampleSessionKey is the session key of the examples' cashier: the
	// password in the POST /v1/sessions example is derived from it.
	exampleSessionKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	exampleDevice     = "lamp-1"
)

func TestOpenAPIRoutesMatchCashier(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	s := newCashier(t, &fakeQueue{ready: true}, 0)
	e, ok := s.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the cashier's handler is a %T, no longer an *echo.Echo; adapt this test", s.Handler())
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/debug/") {
			continue // pprof, only when enabled, not part of the contract
		}
		segs := strings.Split(r.Path, "/")
		for i, seg := range segs {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		served[r.Method+" "+strings.Join(segs, "/")] = true
	}
	documented := map[string]bool{}
	for _, path := range sortedKeys(atMap(t, oa.root, "paths")) {
		item := atMap(t, oa.root, "paths", path)
		for _, method := range sortedKeys(item) {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	if !reflect.DeepEqual(served, documented) {
		t.Errorf("routes differ:\n  served by the cashier: %v\n  documented: %v", sortedKeys(served), sortedKeys(documented))
	}

	// The path's template parameters are exactly the declared path parameters.
	var declared []string
	for _, p := range at(t, oa.root, "paths", commandsPath, "parameters").([]any) {
		p = oa.resolve(t, p)
		if atString(t, p, "in") == "path" {
			declared = append(declared, atString(t, p, "name"))
			if at(t, p, "required") != true {
				t.Error("a path parameter must be required")
			}
		}
	}
	var inPath []string
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(commandsPath, -1) {
		inPath = append(inPath, m[1])
	}
	if !slices.Equal(declared, inPath) || !slices.Equal(inPath, []string{"deviceID"}) {
		t.Errorf("path parameters: template %v, declared %v; the cashier reads c.Param(\"deviceID\")", inPath, declared)
	}
}

// fakeQueue stands in for RabbitMQ: it confirms everything except the
// requests whose raw id token is in refuse ("" for a one-way command),
// which fail with fail (amqplink.ErrNacked when nil).
type fakeQueue struct {
	ready  bool
	refuse []string
	fail   error
}

func (q *fakeQueue) Publish(_ context.Context, _, _ string, m amqp.Publishing) error {
	id := contracts.ReadMeta(m.Headers).MsgID
	if slices.Contains(q.refuse, id) {
		if q.fail != nil {
			return q.fail
		}
		return amqplink.ErrNacked
	}
	return nil
}

func (q *fakeQueue) Ready() bool { return q.ready }

// publishErrors are the ways a publish can fail, by the names x-cashier
// fail-with uses, and more that the cashier must also put in the app's
// terms.
var publishErrors = map[string]error{
	"nacked":          amqplink.ErrNacked,
	"blocked":         amqplink.ErrBlocked,
	"confirm-timeout": amqplink.ErrConfirmTimeout,
	"returned":        amqplink.ErrReturned,
	"not-connected":   amqplink.ErrNotConnected,
	"confirm-lost":    amqplink.ErrConfirmLost,
	"link-closed":     amqplink.ErrClosed,
	"deadline":        context.DeadlineExceeded,
	"canceled":        context.Canceled,
	"other":           errors.New("some error of the AMQP client"),
}

// newCashier runs a cashier with the defaults and one client, app-1, that
// may command lamp-* and door-7; a burst above 0 gives it a rate limit with
// that burst and no refill worth speaking of.
func newCashier(t *testing.T, q cashier.Queue, burst int) *cashier.Server {
	t.Helper()
	sum := sha256.Sum256([]byte(exampleToken))
	reg := fmt.Sprintf("clients:\n  - id: %s\n    token_sha256: %s\n    devices: [\"lamp-*\", \"door-7\"]\n", exampleClient, hex.EncodeToString(sum[:]))
	if burst > 0 {
		reg += fmt.Sprintf("    rate: 0.001\n    burst: %d\n", burst)
	}
	r, err := registry.Parse([]byte(reg + brokertest.DevicesYAML("lamp-1", "lamp-2", "door-7", "door-8")))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	if cfg.SessionKey, err = identity.KeyFromHex(exampleSessionKey); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := cashier.New(cfg, r, q, contracts.DefaultTopology(), prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cashier: %v", err)
		}
	})
	return s
}

// exampleCall is an example's x-request and x-cashier: how to provoke it.
type exampleCall struct {
	method, path string
	deviceID     string
	auth         string // "" (the example token), "none" or "unknown"
	headers      map[string]string
	body         []byte
	bodyIsJSON   bool // body came from x-request.json or x-request.raw (not size)
	queueReady   bool
	refuse       []string
	failWith     error
	burst        int // 0: no rate limit
	rateSpent    bool
}

func newExampleCall(t *testing.T, method, path string, ex map[string]any) exampleCall {
	t.Helper()
	c := exampleCall{method: method, path: path, deviceID: exampleDevice, queueReady: true}
	if req, ok := ex["x-request"].(map[string]any); ok {
		for _, k := range sortedKeys(req) {
			switch v := req[k]; k {
			case "deviceID":
				c.deviceID = v.(string)
			case "auth":
				c.auth = v.(string)
			case "headers":
				c.headers = map[string]string{}
				for h, hv := range v.(map[string]any) {
					c.headers[h] = hv.(string)
				}
			case "json":
				c.body, c.bodyIsJSON = asJSON(t, v), true
			case "raw":
				c.body, c.bodyIsJSON = []byte(v.(string)), true
			case "size":
				n, err := strconv.Atoi(v.(json.Number).String())
				if err != nil {
					t.Fatal(err)
				}
				pad := n - len(`{"jsonrpc":"2.0","method":"m","id":1,"pad":""}`)
				c.body = []byte(`{"jsonrpc":"2.0","method":"m","id":1,"pad":"` + strings.Repeat("x", pad) + `"}`)
			default:
				t.Fatalf("x-request: unknown member %q", k)
			}
		}
	}
	if st, ok := ex["x-cashier"].(map[string]any); ok {
		for _, k := range sortedKeys(st) {
			switch v := st[k]; k {
			case "queue-ready":
				c.queueReady = v.(bool)
			case "rate-spent":
				c.rateSpent = v.(bool)
			case "burst":
				n, err := strconv.Atoi(v.(json.Number).String())
				if err != nil || n < 1 {
					t.Fatalf("x-cashier.burst %v: want a positive integer", v)
				}
				c.burst = n
			case "fail-with":
				err, ok := publishErrors[v.(string)]
				if !ok {
					t.Fatalf("x-cashier.fail-with %q: want one of %v", v, sortedKeys(publishErrors))
				}
				c.failWith = err
			case "refuse":
				for _, id := range v.([]any) {
					tok := ""
					if id != nil {
						tok = string(asJSON(t, id))
					}
					c.refuse = append(c.refuse, tok)
				}
			default:
				t.Fatalf("x-cashier: unknown member %q", k)
			}
		}
	}
	if c.rateSpent && c.burst == 0 {
		c.burst = 1
	}
	return c
}

// do sends the call to a fresh cashier set up as the call says.
func (c exampleCall) do(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	s := newCashier(t, &fakeQueue{ready: c.queueReady, refuse: c.refuse, fail: c.failWith}, c.burst)
	send := func() (*http.Response, []byte) {
		path := strings.ReplaceAll(c.path, "{deviceID}", c.deviceID)
		r := httptest.NewRequest(c.method, path, bytes.NewReader(c.body))
		switch c.auth {
		case "":
			r.Header.Set("Authorization", "Bearer "+exampleToken)
		case "unknown":
			r.Header.Set("Authorization", "Bearer not-a-known-token")
		case "none":
		default:
			t.Fatalf("x-request.auth %q: want none or unknown", c.auth)
		}
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		res := w.Result()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	if c.rateSpent {
		if res, b := send(); res.StatusCode != http.StatusAccepted {
			t.Fatalf("spending the rate: got %d %s, want 202", res.StatusCode, b)
		}
	}
	return send()
}

// notProvoked are response examples that a unit test cannot bring about.
var notProvoked = map[string]string{
	"POST " + commandsPath + " 500 internal": "needs a bug in the cashier",
	"GET /readyz 503 shutting-down":          "needs a cashier in the middle of its shutdown",
	"GET /metrics 200 sample":                "checked after a command by TestOpenAPIMetricsAfterACommand",
}

// withoutReason drops error.data.reason (prose for people, not contract)
// after checking that it is there.
func withoutReason(t *testing.T, what string, v any) any {
	t.Helper()
	m, _ := v.(map[string]any)
	e, _ := m["error"].(map[string]any)
	d, _ := e["data"].(map[string]any)
	if d == nil {
		return v
	}
	if r, _ := d["reason"].(string); r == "" {
		t.Errorf("%s: error.data.reason is missing or empty", what)
	}
	delete(d, "reason")
	return v
}

// exactReason says whether a response's error.data.reason is part of the
// contract: a 503 from the commands route says why in one of a fixed set
// of phrases (UnavailableData), so its examples must say it exactly.
func exactReason(method, path, status string) bool {
	return method == http.MethodPost && path == commandsPath && status == "503"
}

func TestOpenAPIRequestExamples(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	op := atMap(t, oa.root, "paths", commandsPath, "post")
	media := atMap(t, op, "requestBody", "content", "application/json")
	schema := atMap(t, media, "schema")
	accepted := atMap(t, op, "responses", "202", "content", "application/json", "examples")
	examples := atMap(t, media, "examples")
	if len(examples) == 0 {
		t.Fatal("no request examples")
	}
	for _, name := range sortedKeys(examples) {
		t.Run(name, func(t *testing.T) {
			body := asJSON(t, at(t, examples[name], "value"))
			if errs := oa.validate(t, schema, decodeJSON(t, body)); len(errs) > 0 {
				t.Errorf("example does not match the Body schema: %v", errs)
			}
			reqs, batch, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil)
			if err != nil {
				t.Fatalf("ParseBody refuses the example %s: %v", body, err)
			}
			// The 202 example of the same name names exactly these ids.
			want, ok := accepted[name]
			if !ok {
				t.Fatalf("no 202 example named %q", name)
			}
			ids, notifications := []any{}, 0
			for _, r := range reqs {
				if r.Notification() {
					notifications++
					continue
				}
				ids = append(ids, decodeJSON(t, r.ID))
			}
			wantBody := at(t, want, "value")
			if got := map[string]any{"client_id": exampleClient, "accepted": ids, "notifications": json.Number(strconv.Itoa(notifications))}; !jsonEqual(got, wantBody) {
				t.Errorf("202 example %s does not list what ParseBody found: %s (batch %v)", asJSON(t, wantBody), asJSON(t, got), batch)
			}
			// And the cashier answers it with exactly that.
			res, out := newExampleCall(t, http.MethodPost, commandsPath, map[string]any{"x-request": map[string]any{"raw": string(body)}}).do(t)
			if res.StatusCode != http.StatusAccepted || !jsonEqual(decodeJSON(t, out), wantBody) {
				t.Errorf("the cashier answers %d %s, the spec says 202 %s", res.StatusCode, out, asJSON(t, wantBody))
			}
		})
	}
}

// TestOpenAPIResponseExamples provokes every response example from the
// cashier and compares what it answers; examples about the body must also
// fail contracts.ParseBody with the documented code, field and index.
func TestOpenAPIResponseExamples(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	n := 0
	for _, path := range sortedKeys(atMap(t, oa.root, "paths")) {
		for _, method := range sortedKeys(atMap(t, oa.root, "paths", path)) {
			if method == "parameters" {
				continue
			}
			op := atMap(t, oa.root, "paths", path, method)
			for _, status := range sortedKeys(atMap(t, op, "responses")) {
				resp := atMap(t, op, "responses", status)
				for _, ctype := range sortedKeys(atMap(t, resp, "content")) {
					media := atMap(t, resp, "content", ctype)
					examples, _ := media["examples"].(map[string]any)
					for _, name := range sortedKeys(examples) {
						id := strings.ToUpper(method) + " " + path + " " + status + " " + name
						if status == "202" {
							continue // TestOpenAPIRequestExamples
						}
						ex := atMap(t, examples, name)
						n++
						t.Run(strings.ReplaceAll(id, "/", "_"), func(t *testing.T) {
							checkResponseExample(t, oa, strings.ToUpper(method), path, status, ctype, media, resp, name, ex, id)
						})
					}
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d response examples; the walk is broken", n)
	}
}

func checkResponseExample(t *testing.T, oa spec, method, path, status, ctype string, media, resp map[string]any, name string, ex map[string]any, id string) {
	value := at(t, ex, "value")
	if ctype == "application/json" {
		if errs := oa.validate(t, atMap(t, media, "schema"), value); len(errs) > 0 {
			t.Errorf("example does not match its schema: %v", errs)
		}
	}
	call := newExampleCall(t, method, path, ex)

	// An example about the body fails ParseBody as documented.
	if status == "400" && call.bodyIsJSON {
		code := atNumber(t, value, "error", "code")
		field, _ := at(t, value, "error", "data").(map[string]any)["field"].(string)
		_, _, err := contracts.ParseBody(call.body, contracts.DefaultMaxBatch, nil)
		switch {
		case field == "deviceID" || field == cashier.HeaderTimeout:
			if err != nil {
				t.Errorf("the example's body should be valid (the error is about %s), ParseBody says %v", field, err)
			}
		case err == nil:
			t.Errorf("ParseBody accepts %s, documented as %s", call.body, code)
		default:
			var e *contracts.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseBody error %v is not a *contracts.Error", err)
			}
			got := withoutReason(t, id, decodeJSON(t, contracts.ErrorResponse(nil, e)))
			if want := withoutReason(t, id, decodeJSON(t, asJSON(t, value))); !jsonEqual(got, want) {
				t.Errorf("ParseBody(%s):\n  got  %s\n  spec %s", call.body, asJSON(t, got), asJSON(t, want))
			}
		}
	}

	if why, skip := notProvoked[id]; skip {
		t.Skipf("not provoked here: %s", why)
	}
	if _, takesBody := atMap(t, oa.root, "paths", path, strings.ToLower(method))["requestBody"]; takesBody && call.body == nil {
		t.Fatalf("example has no x-request body; add one, or list it in notProvoked")
	}
	res, out := call.do(t)
	if strconv.Itoa(res.StatusCode) != status {
		t.Fatalf("the cashier answers %d %s, the spec says %s", res.StatusCode, out, status)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
		t.Errorf("Content-Type %q, the spec says %s", res.Header.Get("Content-Type"), ctype)
	}
	switch ctype {
	case "application/json":
		if errs := oa.validate(t, atMap(t, media, "schema"), decodeJSON(t, out)); len(errs) > 0 {
			t.Errorf("the cashier's answer %s does not match the response's schema: %v", out, errs)
		}
		got, want := decodeJSON(t, out), decodeJSON(t, asJSON(t, value))
		if !exactReason(method, path, status) {
			got, want = withoutReason(t, id+" (cashier)", got), withoutReason(t, id, want)
		}
		if !jsonEqual(got, want) {
			t.Errorf("the cashier answers\n  %s\nthe spec says\n  %s", out, asJSON(t, value))
		}
	default: // text: every line of the example is in the answer
		for line := range strings.Lines(value.(string)) {
			if !strings.Contains(string(out), line) {
				t.Errorf("the answer has no line %q", strings.TrimSpace(line))
			}
		}
	}
	headers, _ := resp["headers"].(map[string]any)
	for _, h := range sortedKeys(headers) {
		def := oa.resolve(t, headers[h])
		got := res.Header.Get(h)
		if got == "" {
			if at(t, def, "required") == true {
				t.Errorf("header %s is missing", h)
			}
			continue
		}
		var v any = got
		if ty, _ := atMap(t, def, "schema")["type"].(string); ty == "integer" {
			v = json.Number(got)
		}
		if errs := oa.validate(t, atMap(t, def, "schema"), v); len(errs) > 0 {
			t.Errorf("header %s: %q does not match its schema: %v", h, got, errs)
		}
	}
}

// TestOpenAPIUnavailableReasons provokes a 503 for every way a publish can
// fail, for one request and for a batch, and from a cashier without a
// confirm channel: every answer must match the 503 schema (so its reason is
// one of the documented phrases and a batch lists every request), and
// every documented reason must be one the cashier gives.
func TestOpenAPIUnavailableReasons(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	schema := atMap(t, oa.root, "paths", commandsPath, "post", "responses", "503", "content", "application/json", "schema")
	documented := map[string]bool{}
	for i, shape := range at(t, oa.schema(t, "UnavailableData"), "oneOf").([]any) {
		reason := atMap(t, oa.resolve(t, at(t, shape, "properties", "reason")))
		switch {
		case reason["const"] != nil:
			documented[atString(t, reason, "const")] = true
		case reason["enum"] != nil:
			for _, r := range at(t, reason, "enum").([]any) {
				documented[r.(string)] = true
			}
		default:
			t.Fatalf("UnavailableData oneOf/%d: the reason is neither a const nor an enum", i)
		}
	}

	given := map[string]bool{}
	provoke := func(what string, q *fakeQueue, body string) {
		t.Helper()
		r := httptest.NewRequest(http.MethodPost, "/v1/devices/"+exampleDevice+"/commands", strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+exampleToken)
		w := httptest.NewRecorder()
		newCashier(t, q, 0).Handler().ServeHTTP(w, r)
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: the cashier answers %d %s, want 503", what, w.Code, w.Body)
			return
		}
		answer := decodeJSON(t, w.Body.Bytes())
		if errs := oa.validate(t, schema, answer); len(errs) > 0 {
			t.Errorf("%s: the answer %s does not match the 503 schema: %v", what, w.Body, errs)
		}
		given[atString(t, answer, "error", "data", "reason")] = true
	}
	const (
		single = `{"jsonrpc":"2.0","method":"m","id":7}`
		batch  = `[{"jsonrpc":"2.0","method":"m","id":7},{"jsonrpc":"2.0","method":"m","id":8},{"jsonrpc":"2.0","method":"m"}]`
	)
	provoke("no confirm channel", &fakeQueue{}, single)
	provoke("no confirm channel, batch", &fakeQueue{}, batch)
	for _, name := range sortedKeys(publishErrors) {
		provoke(name, &fakeQueue{ready: true, refuse: []string{"7"}, fail: publishErrors[name]}, single)
		provoke(name+", batch", &fakeQueue{ready: true, refuse: []string{"7", ""}, fail: publishErrors[name]}, batch)
	}
	for _, r := range sortedKeys(documented) {
		if !given[r] {
			t.Errorf("openapi.yaml documents the 503 reason %q, which the cashier never gives", r)
		}
	}
}

func TestOpenAPIMetricsAfterACommand(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	want := atString(t, oa.root, "paths", "/metrics", "get", "responses", "200", "content", "text/plain", "examples", "sample", "value")
	s := newCashier(t, &fakeQueue{ready: true}, 0)
	r := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", strings.NewReader(`{"jsonrpc":"2.0","method":"m","id":1}`))
	r.Header.Set("Authorization", "Bearer "+exampleToken)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(want) {
		if !strings.Contains(w.Body.String(), line) {
			t.Errorf("/metrics after one accepted command has no line %q", strings.TrimSpace(line))
		}
	}
}
