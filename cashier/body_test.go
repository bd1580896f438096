package cashier_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/identity"
)

// These tests talk to a running cashier over real TCP (and TLS) with a
// client that writes exactly the bytes it is told to, the way scripts and
// small HTTP clients do: headers, then the whole body, and only then the
// answer. They stand for what net/http's own client would hide (it sends
// Expect, reads while it writes, retries).

// serve runs s until the test ends (t.Context is cancelled then).
func serve(t *testing.T, s *cashier.Server) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Run(t.Context()) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// rawClient is one connection to the cashier.
type rawClient struct {
	net.Conn
	r *bufio.Reader
}

// dialRaw connects to s, over TLS when tc is not nil.
func dialRaw(t *testing.T, s *cashier.Server, tc *tls.Config) *rawClient {
	t.Helper()
	var c net.Conn
	var err error
	if tc != nil {
		c, err = tls.Dial("tcp", s.Addr().String(), tc)
	} else {
		c, err = net.Dial("tcp", s.Addr().String())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{Conn: c, r: bufio.NewReader(c)}
}

// head is the start of a POST of a command to lamp-1 with the given
// token and extra header lines (each ending in \r\n).
func head(token, extra string) string {
	return "POST /v1/devices/lamp-1/commands HTTP/1.1\r\nHost: cafe\r\nAuthorization: Bearer " + token + "\r\nContent-Type: application/json\r\n" + extra + "\r\n"
}

// answer reads one response, giving up after a generous 10 s.
func (c *rawClient) answer(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(c.r, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("answer's body: %v", err)
	}
	return res, body
}

// closedWithin requires the server to close the connection within d,
// reading (and dropping) whatever else it sends.
func (c *rawClient) closedWithin(t *testing.T, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", d)
	}
}

// wantError requires a JSON-RPC error answer with the status and code.
func wantError(t *testing.T, res *http.Response, body []byte, status int, code contracts.Code) {
	t.Helper()
	var e struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code contracts.Code `json:"code"`
			Data struct {
				Reason string `json:"reason"`
			} `json:"data"`
		} `json:"error"`
	}
	if res.StatusCode != status || json.Unmarshal(body, &e) != nil || e.JSONRPC != "2.0" || string(e.ID) != "null" || e.Error.Code != code || e.Error.Data.Reason == "" {
		t.Fatalf("got %d %s, want %d with a JSON-RPC error %d", res.StatusCode, body, status, code)
	}
}

// bigBody is n bytes of a JSON-RPC request.
func bigBody(n int) string {
	const start, end = `{"jsonrpc":"2.0","method":"m","id":1,"pad":"`, `"}`
	return start + strings.Repeat("x", n-len(start)-len(end)) + end
}

// chunked is body in the chunked transfer coding, 32 KiB a chunk.
func chunked(body string) string {
	var b strings.Builder
	for len(body) > 0 {
		n := min(len(body), 32<<10)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
		body = body[n:]
	}
	return b.String() + "0\r\n\r\n"
}

// Python's urllib and most scripts send the whole body before reading, and
// do not send Expect: 100-continue. A 4 MiB body must get its 413 (or, with
// a bad token, its 401) every time, not a reset connection.
func TestOversizedBodyIsAnsweredToClientsThatSendItAll(t *testing.T) {
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			s, tc := newServerFor(t, scheme)
			serve(t, s)
			body := bigBody(4 << 20)
			for _, tc2 := range []struct {
				name, request string
				tries         int
				status        int
				code          contracts.Code
			}{
				{"Content-Length", head(tokenApp1, fmt.Sprintf("Content-Length: %d\r\n", len(body))) + body, 20, 413, contracts.CodeTooLarge},
				{"chunked", head(tokenApp1, "Transfer-Encoding: chunked\r\n") + chunked(body), 5, 413, contracts.CodeTooLarge},
				{"unknown token", head("nope", fmt.Sprintf("Content-Length: %d\r\n", len(body))) + body, 5, 401, contracts.CodeUnauthorized},
			} {
				t.Run(tc2.name, func(t *testing.T) {
					for i := range tc2.tries {
						c := dialRaw(t, s, tc)
						if _, err := io.WriteString(c, tc2.request); err != nil {
							t.Fatalf("try %d of %d: writing the body: %v", i+1, tc2.tries, err)
						}
						res, out := c.answer(t)
						wantError(t, res, out, tc2.status, tc2.code)
						if !res.Close {
							t.Fatalf("try %d: the answer does not say Connection: close", i+1)
						}
						c.Close()
					}
				})
			}
		})
	}
}

// POST /v1/sessions reads no body; a client that sends one anyway still
// reads its session.
func TestSessionWithABodyIsAnswered(t *testing.T) {
	key, err := identity.KeyFromHex(strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.SessionKey = key })
	serve(t, s)
	body := bigBody(4 << 20)
	for i := range 5 {
		c := dialRaw(t, s, nil)
		req := strings.Replace(head(tokenApp1, fmt.Sprintf("Content-Length: %d\r\n", len(body))), "/v1/devices/lamp-1/commands", "/v1/sessions", 1)
		if _, err := io.WriteString(c, req+body); err != nil {
			t.Fatalf("try %d: writing the body: %v", i+1, err)
		}
		if res, out := c.answer(t); res.StatusCode != 200 || !strings.Contains(string(out), `"username":"app-1"`) {
			t.Fatalf("try %d: %d %s", i+1, res.StatusCode, out)
		}
		c.Close()
	}
}

// An answer given before the body goes out at once: a client that reads
// while it sends (curl, Go's client) learns of the 413 before it has sent
// the body, not after.
func TestEarlyAnswerIsSentBeforeTheBody(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.BodyTimeout = time.Minute })
	serve(t, s)
	c := dialRaw(t, s, nil)
	if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 4194304\r\n")); err != nil {
		t.Fatal(err)
	}
	res, out := c.answer(t)
	wantError(t, res, out, 413, contracts.CodeTooLarge)
	// Then the cashier waits for the body (to drop it); sending it ends the
	// exchange cleanly.
	if _, err := io.WriteString(c, bigBody(4<<20)); err != nil {
		t.Fatalf("the cashier did not take the rest of the body: %v", err)
	}
	c.closedWithin(t, 10*time.Second)
}

// A client that sent Expect: 100-continue and got an answer instead never
// sends the body: the cashier must not wait for it.
func TestExpectContinueGetsItsAnswerUnread(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.BodyTimeout = time.Minute })
	serve(t, s)
	for _, tc := range []struct {
		name, token string
		status      int
		code        contracts.Code
	}{
		{"too large", tokenApp1, 413, contracts.CodeTooLarge},
		{"unknown token", "nope", 401, contracts.CodeUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s, nil)
			if _, err := io.WriteString(c, head(tc.token, "Content-Length: 4194304\r\nExpect: 100-continue\r\n")); err != nil {
				t.Fatal(err)
			}
			res, out := c.answer(t)
			wantError(t, res, out, tc.status, tc.code)
			c.closedWithin(t, 10*time.Second) // not the body timeout of a minute
		})
	}
}

// A body that says it is larger than the cashier would ever drop is
// answered and the connection closed at once.
func TestHugeBodyIsNotDiscarded(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.BodyTimeout = time.Minute })
	serve(t, s)
	c := dialRaw(t, s, nil)
	huge := contracts.MaxBodyBytes + cashier.MaxDiscardBytes + 1
	if _, err := io.WriteString(c, head(tokenApp1, fmt.Sprintf("Content-Length: %d\r\n", huge))); err != nil {
		t.Fatal(err)
	}
	res, out := c.answer(t)
	wantError(t, res, out, 413, contracts.CodeTooLarge)
	c.closedWithin(t, 10*time.Second)
}

// A body that does not arrive within BodyTimeout gets 408 and the
// connection is closed, whether it stalls or trickles.
func TestSlowBodyIsCutWith408(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name, scheme string
		trickle      bool
	}{{"stalled", "http", false}, {"trickling", "http", true}, {"stalled over TLS", "https", false}, {"trickling over TLS", "https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s, tlsCfg := newServerFor(t, tc.scheme, func(c *cashier.Config) { c.BodyTimeout = timeout })
			serve(t, s)
			c := dialRaw(t, s, tlsCfg)
			start := time.Now()
			if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 1000\r\n")+`{"jsonrpc":`); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for tc.trickle {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
						if _, err := c.Write([]byte(" ")); err != nil {
							return
						}
					}
				}
			}()
			res, out := c.answer(t)
			close(stop)
			<-done
			wantError(t, res, out, http.StatusRequestTimeout, contracts.CodeInvalidRequest)
			if held := time.Since(start); held < timeout || held > timeout+5*time.Second {
				t.Errorf("answered after %v, want soon after the body timeout %v", held, timeout)
			}
			if !res.Close {
				t.Error("the 408 does not say Connection: close")
			}
			c.closedWithin(t, 5*time.Second)
		})
	}
}

// Dropping the rest of a body is bounded by the same deadline: a client
// that stalls after its 413 is cut too.
func TestStalledDiscardIsCut(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.BodyTimeout = 300 * time.Millisecond })
	serve(t, s)
	c := dialRaw(t, s, nil)
	if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 4194304\r\n")+"{"); err != nil {
		t.Fatal(err)
	}
	res, out := c.answer(t)
	wantError(t, res, out, 413, contracts.CodeTooLarge)
	c.closedWithin(t, 5*time.Second)
}

// A body read to its end leaves the connection open for the next request.
func TestKeepAliveAfterAFullBody(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	serve(t, s)
	c := dialRaw(t, s, nil)
	for i := range 3 {
		if _, err := io.WriteString(c, head(tokenApp1, fmt.Sprintf("Content-Length: %d\r\n", len(one)))+one); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if res, out := c.answer(t); res.StatusCode != 202 || res.Close {
			t.Fatalf("request %d on one connection: %d (close %v) %s", i+1, res.StatusCode, res.Close, out)
		}
	}
	if n := len(q.published()); n != 3 {
		t.Fatalf("published %d, want 3", n)
	}
}

// Hostile bodies: broken chunking, two or a negative Content-Length, a client that
// hangs up halfway. Each gets an answer or a close, never a hang, and
// nothing is queued.
func TestMalformedBodies(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q, func(c *cashier.Config) { c.BodyTimeout = 2 * time.Second })
	serve(t, s)
	for _, tc := range []struct {
		name, request string
		status        int // 0: only a close is required
	}{
		{"bad chunk size", head(tokenApp1, "Transfer-Encoding: chunked\r\n") + "zz\r\n" + one + "\r\n0\r\n\r\n", 400},
		{"chunk longer than said", head(tokenApp1, "Transfer-Encoding: chunked\r\n") + "3\r\n" + one + "\r\n0\r\n\r\n", 400},
		{"two Content-Lengths", head(tokenApp1, "Content-Length: 5\r\nContent-Length: 6\r\n") + one, 400},
		{"negative Content-Length", head(tokenApp1, "Content-Length: -1\r\n") + one, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s, nil)
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			res, err := http.ReadResponse(c.r, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			c.closedWithin(t, 5*time.Second)
		})
	}
	t.Run("hang up halfway", func(t *testing.T) {
		c := dialRaw(t, s, nil)
		if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 1000\r\n")+`{"jsonrpc":"2.0",`); err != nil {
			t.Fatal(err)
		}
		c.Close()
		c = dialRaw(t, s, nil)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cafe\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if res, out := c.answer(t); res.StatusCode != 200 {
			t.Fatalf("healthz after a hang-up: %d %s", res.StatusCode, out)
		}
	})
	if n := len(q.published()); n != 0 {
		t.Fatalf("published %d", n)
	}
}
