package cashier_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cafe/cashier"
)

// Past MaxConns, a new connection waits unserved until a served one
// closes; the gauge shows the open ones.
func TestConnectionCap(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.MaxConns, c.BodyTimeout = 2, time.Minute })
	serve(t, s)
	var held []*rawClient
	for range 2 {
		c := dialRaw(t, s)
		if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 1000\r\n")+"{"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waiting := dialRaw(t, s) // the kernel completes the handshake; the cashier does not accept it
	if _, err := io.WriteString(waiting, "GET /healthz HTTP/1.1\r\nHost: cafe\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = waiting.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := waiting.r.Peek(1); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	if got := metric(t, s, "cafe_cashier_http_connections"); got != "2" {
		t.Errorf("cafe_cashier_http_connections %s, want 2", got)
	}
	held[0].Close()
	if res, out := waiting.answer(t); res.StatusCode != 200 {
		t.Fatalf("the waiting connection, once one closed: %d %s", res.StatusCode, out)
	}
}

// metric is the value of an unlabelled metric on s's /metrics.
func metric(t *testing.T, s *cashier.Server, name string) string {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(w.Body.String()) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}
