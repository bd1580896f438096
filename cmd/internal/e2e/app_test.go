package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cafe/cmd/internal/appclient"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// resultWait bounds the wait for a result that should come promptly.
const resultWait = 15 * time.Second

// result is one message an app received on its results topic.
type result struct {
	raw  []byte
	resp contracts.Response // decoded; resp.ID is the raw id token
	at   time.Time          // when it arrived
}

// app is an app as the public contract (README, contracts/openapi.yaml and
// asyncapi.yaml) describes one: it submits commands to the cashier over
// HTTP and receives results on clients/{clientID}/results.
// Its methods take the test or subtest calling them.
type app struct {
	base   string // the cashier's base URL
	client client
	http   *http.Client
	stop   func() // ends its MQTT connection

	mu      sync.Mutex
	results []result
}

// newApp subscribes (QoS 1) to c's results topic before it returns, so
// nothing submitted afterwards can be missed.
func newApp(t testing.TB, base string, c client) *app {
	t.Helper()
	a := &app{base: base, client: c, http: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: localTLS()}}}
	t.Cleanup(a.http.CloseIdleConnections)
	a.stop = subscribeResults(t, a.session(t), true, a.onResult)
	return a
}

// aside takes the app's MQTT connection down while fn runs and brings it
// back afterwards: the broker holds one connection per client id, so
// another client logging in as this app (cafe order) and the app's own
// link would take the connection from each other, and one would miss
// its results.
func (a *app) aside(t testing.TB, fn func()) {
	t.Helper()
	a.stop()
	fn()
	a.stop = subscribeResults(t, a.session(t), true, a.onResult)
}

func (a *app) onResult(_ string, payload []byte) {
	r := result{raw: append([]byte(nil), payload...), at: time.Now()}
	_ = json.Unmarshal(r.raw, &r.resp) // an undecodable result keeps a nil id; tests see it in all()
	a.mu.Lock()
	a.results = append(a.results, r)
	a.mu.Unlock()
}

// session asks the cashier for the app's MQTT credentials, as an app does.
func (a *app) session(t testing.TB) appclient.Session {
	t.Helper()
	s, err := appclient.Fetch(context.Background(), a.http, a.base, a.client.token)
	if err != nil {
		t.Fatal(err)
	}
	if s.Username != a.client.id || s.ClientID != a.client.id || s.Password == "" {
		t.Fatalf("session %+v: want user name and client id %s and a password", s, a.client.id)
	}
	return s
}

// subscribeResults connects to MQTT with the app's session, the way an app
// does, and subscribes (QoS 1) to its results topic before it returns. A
// session that is not clean is forgotten when the link stops (at the end
// of the test, or when stop is called).
func subscribeResults(t testing.TB, s appclient.Session, clean bool, on func(topic string, payload []byte)) (stop func()) {
	t.Helper()
	cfg, err := s.MQTT("", clean)
	if err != nil {
		t.Fatal(err)
	}
	if !clean { // a persistent session outlives stop (the app may come back to it) until the test ends
		forgetMQTTSessionAtEnd(t, cfg.ClientID)
	}
	if u, _ := url.Parse(cfg.URL); u != nil && mqttlink.TLSScheme(u.Scheme) {
		cfg.TLS.CA = brokertest.CAFile()
	}
	link, err := mqttlink.New(cfg, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := link.Subscribe(ctx, contracts.ResultsTopic(s.ClientID), 1, on); err != nil {
		t.Fatal(err)
	}
	stop = brokertest.Run(t, link)
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatalf("app %s on MQTT with its session's credentials: %v", s.ClientID, err)
	}
	return stop
}

// pipelineApp is the app of p's client.
func pipelineApp(p *pipeline) *app { return newApp(p.t, p.url(), p.client) }

// post submits body for device with the app's token and the headers given
// as name, value pairs (e.g. "Cafe-Timeout", "1s"). It returns the status
// and body of the answer.
func (a *app) post(t testing.TB, device, body string, headers ...string) (int, []byte) {
	t.Helper()
	return a.send(t, a.client.token, device, body, false, headers...)
}

// send posts body for device with token ("" sends no Authorization
// header); chunked hides the body's length from the server.
func (a *app) send(t testing.TB, token, device, body string, chunked bool, headers ...string) (int, []byte) {
	t.Helper()
	var r io.Reader = strings.NewReader(body)
	if chunked {
		r = io.MultiReader(r) // not a type net/http can take a length from
	}
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/devices/"+device+"/commands", r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", req.URL, err)
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("POST %s: reading the answer: %v", req.URL, err)
	}
	return res.StatusCode, answer
}

// submit posts and requires 202 Accepted; it returns the answer's body.
func (a *app) submit(t testing.TB, device, body string, headers ...string) []byte {
	t.Helper()
	status, answer := a.post(t, device, body, headers...)
	if status != http.StatusAccepted {
		t.Fatalf("POST %s: got %d %s, want 202", body, status, answer)
	}
	return answer
}

// all returns every result received so far, in arrival order.
func (a *app) all() []result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]result(nil), a.results...)
}

// withID returns the results whose id is the raw JSON token id (7, "a-7").
func (a *app) withID(id string) []result {
	var out []result
	for _, r := range a.all() {
		if string(r.resp.ID) == id {
			out = append(out, r)
		}
	}
	return out
}

// wait waits for the first result with raw id token id.
func (a *app) wait(t testing.TB, id string, timeout time.Duration) result {
	t.Helper()
	var r result
	brokertest.Eventually(t, timeout, fmt.Sprintf("no result with id %s on %s; got %s",
		id, contracts.ResultsTopic(a.client.id), a.summary()), func() bool {
		got := a.withID(id)
		if len(got) > 0 {
			r = got[0]
		}
		return len(got) > 0
	})
	return r
}

// summary lists the ids received, for failure messages.
func (a *app) summary() string {
	var ids []string
	for _, r := range a.all() {
		ids = append(ids, string(r.resp.ID))
	}
	return fmt.Sprintf("%d results %v", len(ids), ids)
}

// wantError checks that r is a JSON-RPC error response with code.
func wantError(t testing.TB, r result, code contracts.Code) {
	t.Helper()
	if r.resp.Error == nil || r.resp.Error.Code != code {
		t.Fatalf("got %s, want an error %d (%s)", r.raw, code, code.Message())
	}
	if r.resp.Error.Message != code.Message() {
		t.Errorf("got message %q, want %q", r.resp.Error.Message, code.Message())
	}
	if r.resp.JSONRPC != contracts.Version || len(r.resp.Result) != 0 {
		t.Errorf("not a JSON-RPC error response: %s", r.raw)
	}
}

// rpcError decodes the JSON-RPC error of a refused submission.
func rpcError(t testing.TB, body []byte) *contracts.Error {
	t.Helper()
	var resp contracts.Response
	if err := json.Unmarshal(body, &resp); err != nil || resp.Error == nil {
		t.Fatalf("answer %s is not a JSON-RPC error response (%v)", body, err)
	}
	if !bytes.Equal(resp.ID, []byte("null")) {
		t.Errorf("answer %s: want id null", body)
	}
	return resp.Error
}
