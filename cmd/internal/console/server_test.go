package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts/registry"
)

const opToken = "op-token-123"

func regWith(t *testing.T, operators ...string) *registry.Registry {
	t.Helper()
	doc := "clients:\n  - id: app-1\n    token_sha256: " + hexSum("app-token") + "\n    devices: [\"lamp-*\"]\n    rate: 5\noperators:\n"
	for _, op := range operators {
		doc += "  - id: " + op + "\n    token_sha256: " + hexSum(opToken+op) + "\n"
	}
	r, err := registry.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hexSum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

type stillPipeline struct{}

func (stillPipeline) Pipeline(context.Context) PipelineView {
	return PipelineView{Queues: []Queue{{Name: "cafe.commands", Depth: 3}}, Sources: []SourceState{{Name: "RabbitMQ", Since: time.Date(2026, 1, 1, 12, 3, 4, 0, time.UTC)}}}
}

// noDead is a DeadLetters that records what it was asked.
type noDead struct{ replays, purges atomic.Int32 }

func (*noDead) List(context.Context, deadletter.Filter) ([]deadletter.Letter, error) { return nil, nil }
func (*noDead) Show(context.Context, string) (deadletter.Letter, []byte, error) {
	return deadletter.Letter{}, nil, io.EOF
}
func (d *noDead) Replay(context.Context, deadletter.Filter, bool, string) (deadletter.Report, []deadletter.Outcome, error) {
	d.replays.Add(1)
	return deadletter.Report{}, nil, nil
}
func (d *noDead) Purge(context.Context, deadletter.Filter, string) ([]deadletter.Letter, error) {
	d.purges.Add(1)
	return nil, nil
}

type testConsole struct {
	url  string
	reg  atomic.Pointer[registry.Registry]
	dead *noDead
}

func startConsole(t *testing.T) *testConsole {
	t.Helper()
	tc := &testConsole{dead: &noDead{}}
	tc.reg.Store(regWith(t, "alice"))
	cfg := Config{Addr: "127.0.0.1:0", Tick: 100 * time.Millisecond}
	srv, err := New(cfg, Sources{Registry: tc.reg.Load, Devices: NewIndex(), Pipeline: stillPipeline{}, Dead: tc.dead}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	tc.url = srv.URL()
	return tc
}

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, header ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var csrfMeta = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// logIn logs c in with token and returns the session's CSRF token.
func logIn(t *testing.T, tc *testConsole, c *http.Client, token string) *http.Response {
	t.Helper()
	_, body := get(t, c, tc.url+"/login")
	m := csrfMeta.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("login form without a csrf field:\n%s", body)
	}
	return post(t, c, tc.url+"/login", url.Values{"csrf": {m[1]}, "token": {token}, "next": {"/devices"}})
}

func sessionCSRF(t *testing.T, tc *testConsole, c *http.Client) string {
	t.Helper()
	_, body := get(t, c, tc.url+"/pipeline")
	m := regexp.MustCompile(`<meta name="csrf" content="([^"]+)">`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("page without a csrf meta:\n%s", body)
	}
	return m[1]
}
