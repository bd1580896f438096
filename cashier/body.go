package cashier

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"cafe/contracts"
)

// How the cashier treats request bodies, so that every client can read its
// answer and none holds a connection for long:
//
//   - A body must arrive within BodyTimeout of its headers. One that is late
//     gets 408 and the connection is closed; a client that reads only after
//     sending its whole body sees the close instead.
//   - An answer given before the body was read to its end (401, 403, 404,
//     413, ...) says "Connection: close" and goes out at once; then the
//     cashier reads and drops the rest of the body, up to MaxBodyBytes +
//     MaxDiscardBytes in all and within the same deadline, before closing.
//     Without that, closing a connection with body bytes still unread
//     makes the kernel reset it, and a client that sends its whole body
//     before reading (Python's urllib, most scripts) gets "connection
//     reset" instead of its 413.
//   - Nothing is read after the answer from a client that sent "Expect:
//     100-continue" and was not told to continue (it does not send the body),
//     from a body that failed to read (late, broken chunking), or from one
//     whose Content-Length is over MaxBodyBytes + MaxDiscardBytes: those
//     connections are closed at once (and a client still sending may see
//     them reset).

// MaxDiscardBytes is how far over MaxBodyBytes a body may go and still get
// its 413 (or earlier answer) rather than a reset connection: the cashier
// reads and drops up to this much beyond the limit after answering.
const MaxDiscardBytes = 8 << 20

// guardBody is the middleware that carries out the above for every route.
func (s *Server) guardBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		rc := http.NewResponseController(c.Response())
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) // fails only without a connection (httptest)
		b := &watchedBody{ReadCloser: r.Body}
		r.Body = b
		if err := next(c); err != nil {
			c.Error(err) // answer now, while the body is watched
		}
		if left := s.discardable(r, b); left > 0 {
			_ = rc.Flush() // the answer first, for clients that read while they send
			_, _ = io.CopyN(io.Discard, b, left)
		}
		r.Body = b.ReadCloser // net/http finishes a request by looking at its own body
		return nil
	}
}

// bodyLeft says whether the request's body was not read to its end, so
// that fail's answer goes ahead of the rest (see guardBody). The one other
// answer given with a body left, a 200 to a POST /v1/sessions that came
// with a body, is left to net/http: it drops up to 256 KiB of the body
// before sending the answer and says "Connection: close" if there is more.
func bodyLeft(c echo.Context) bool {
	b, ok := c.Request().Body.(*watchedBody)
	return ok && !b.eof
}

// watchedBody is a request body that remembers how far it was read.
type watchedBody struct {
	io.ReadCloser
	n       int64 // bytes read
	started bool  // read at all (so an awaited 100 Continue went out)
	eof     bool  // read to its end
	err     error // the first error other than io.EOF: the rest cannot be read
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.started = true
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && b.err == nil:
		b.err = err
	}
	return n, err
}

// discardable is how much more of the body to read and drop after the
// answer so that the client can read it: none when the body was read to
// its end or cannot be (see the top of this file).
func (s *Server) discardable(r *http.Request, b *watchedBody) int64 {
	most := s.cfg.MaxBodyBytes + MaxDiscardBytes
	switch {
	case b.eof, b.err != nil, b.n >= most, r.ContentLength > most:
		return 0
	case !b.started && r.ProtoAtLeast(1, 1) && strings.EqualFold(r.Header.Get("Expect"), "100-continue"):
		return 0
	}
	return most - b.n
}

// readBody reads the body into buf, enforcing the size limit and the
// body's deadline (set by guardBody).
func (s *Server) readBody(c echo.Context, buf *bytes.Buffer) (int, *contracts.Error) {
	r := c.Request()
	tooLarge := func() (int, *contracts.Error) {
		return http.StatusRequestEntityTooLarge, contracts.NewError(contracts.CodeTooLarge,
			contracts.Detail{Reason: "body is larger than " + strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + " bytes; send fewer or smaller commands"})
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return tooLarge()
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(c.Response(), r.Body, s.cfg.MaxBodyBytes))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return tooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, contracts.NewError(contracts.CodeInvalidRequest,
			contracts.Detail{Reason: "the body did not arrive within " + s.cfg.BodyTimeout.String() + " of the headers; send the whole body at once"})
	case err != nil:
		return http.StatusBadRequest, contracts.NewError(contracts.CodeParseError, contracts.Detail{Reason: "could not read the body: " + err.Error()})
	}
	return 0, nil
}
