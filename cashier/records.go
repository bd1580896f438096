package cashier

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"cafe/contracts"
	"cafe/contracts/records"
)

// Records is what the cashier needs of the ledger's database: reads only.
type Records interface {
	Command(ctx context.Context, client, msgID string) (*records.Command, error)
	Results(ctx context.Context, client string, seq int64, since time.Time, limit int) ([]records.Result, error)
	PendingAmong(ctx context.Context, pairs []records.ClientMsg) ([]records.ClientMsg, error)
}

// UseRecords gives the cashier the ledger's database; without it GET
// /v1/commands/{id} and GET /v1/results answer 503. Call it before Run.
func (s *Server) UseRecords(r Records) {
	s.records, s.dups = r, newDupLookups(r.PendingAmong, s.m.dupPairs)
}

// Limits of the records API.
const (
	MaxWait         = 60 * time.Second       // longest ?wait=
	DefaultLimit    = 100                    // results per page unless ?limit=
	MaxLimit        = 1000                   // most results per page
	pollEvery       = 100 * time.Millisecond // how often a long poll looks again
	recordsDeadline = 5 * time.Second        // one read of the database
)

// CommandPath is where an accepted command's record is: the app's id as
// it sent it, a number as digits, a string without its quotes (a string
// that looks like a number keeps them, URL-encoded: "7" is %227%22).
func CommandPath(idToken []byte) string {
	seg := string(idToken)
	if s, ok := strings.CutPrefix(seg, `"`); ok && !numeric(strings.TrimSuffix(s, `"`)) {
		seg = strings.TrimSuffix(s, `"`)
	}
	return "/v1/commands/" + url.PathEscape(seg)
}

// idToken is the reverse of CommandPath: the app's raw id token.
func idToken(seg string) (string, bool) {
	tok := seg
	if !strings.HasPrefix(seg, `"`) && !numeric(seg) {
		tok = `"` + seg + `"`
	}
	return tok, contracts.ValidIDToken(tok)
}

func numeric(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// readable checks what every records request needs: a known app (401)
// and a database (503).
func (s *Server) readable(c echo.Context) (string, int, *contracts.Error) {
	client, status, e := s.authenticate(c, s.dir.Load())
	if e != nil {
		return "", status, e
	}
	if s.records == nil {
		return "", http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable,
			contracts.Detail{Reason: "this cashier keeps no records: no ledger database (" + records.SettingURL.Env + "), or no ledger (cafe up --ledgers 0)"})
	}
	return client.ID, 0, nil
}

// unreadable answers 503 when the database fails (logged, not shown:
// its errors say nothing an app can act on).
func (s *Server) unreadable(c echo.Context, err error) error {
	s.log.Warn("ledger database read failed", "path", c.Request().URL.Path, "err", err)
	return s.fail(c, http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable,
		contracts.Detail{Reason: "the ledger's database did not answer; retry later"}))
}

func invalidParam(field, reason string) *contracts.Error {
	return contracts.NewError(contracts.CodeInvalidRequest, contracts.Detail{Field: field, Reason: reason})
}

// command handles GET /v1/commands/{id}.
func (s *Server) command(c echo.Context) error {
	client, status, e := s.readable(c)
	if e != nil {
		return s.fail(c, status, e)
	}
	seg, err := url.PathUnescape(c.Param("id"))
	tok, ok := idToken(seg)
	if err != nil || !ok {
		return s.fail(c, http.StatusBadRequest, invalidParam("id", "want the command's JSON-RPC id: digits, or 1 to 128 characters from A-Z a-z 0-9 . _ : -"))
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), recordsDeadline)
	defer cancel()
	rec, err := s.records.Command(ctx, client, tok)
	if errors.Is(err, records.ErrNotFound) {
		return s.fail(c, http.StatusNotFound, contracts.NewError(contracts.CodeNoRecord,
			contracts.Detail{Field: "id", Reason: "this app has no command with that id (never sent, not recorded yet, or older than the retention)"}))
	}
	if err != nil {
		return s.unreadable(c, err)
	}
	s.m.requests.WithLabelValues("200").Inc()
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, commandBody(rec))
}

// commandView is GET /v1/commands/{id}'s body, but for the result, which
// is spliced in unchanged (encoding/json would reformat it).
type commandView struct {
	ID         json.RawMessage `json:"id"`
	CommandID  string          `json:"command_id"`
	DeviceID   string          `json:"device_id"`
	Status     string          `json:"status"`
	AcceptedAt *time.Time      `json:"accepted_at,omitempty"`
	DoneAt     *time.Time      `json:"done_at,omitempty"`
	Outcome    string          `json:"outcome,omitempty"`
	History    []records.Step  `json:"history"`
}

func commandBody(r *records.Command) []byte {
	v := commandView{ID: json.RawMessage(r.MsgID), CommandID: r.CommandID, DeviceID: r.DeviceID, Status: r.Status.String(),
		AcceptedAt: timeOrNil(r.AcceptedAt), DoneAt: timeOrNil(r.DoneAt), Outcome: r.Outcome, History: r.History}
	if v.History == nil {
		v.History = []records.Step{}
	}
	b, _ := json.Marshal(v) // plain values: cannot fail
	return withResult(b, r.Result)
}

// withResult splices "result": <raw> into the JSON object b, if raw is set.
func withResult(b, raw []byte) []byte {
	if raw == nil {
		return b
	}
	out := append(b[:len(b)-1:len(b)-1], `,"result":`...)
	out = append(out, raw...)
	return append(out, '}')
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// resultsQuery is what GET /v1/results was asked.
type resultsQuery struct {
	after records.Cursor
	wait  time.Duration
	limit int
}

func parseResultsQuery(q url.Values) (resultsQuery, *contracts.Error) {
	out := resultsQuery{limit: DefaultLimit}
	for name, vs := range q {
		if len(vs) > 1 {
			return out, invalidParam(name, "give it once")
		}
	}
	var err error
	if out.after, err = records.ParseCursor(q.Get("after")); err != nil {
		return out, invalidParam("after", "want the next cursor of a previous page, or an RFC 3339 time for the first call")
	}
	if w := q.Get("wait"); w != "" {
		if out.wait, err = time.ParseDuration(w); err != nil || out.wait < 0 || out.wait > MaxWait {
			return out, invalidParam("wait", "want a Go duration from 0s to "+MaxWait.String()+", such as 30s")
		}
	}
	if l := q.Get("limit"); l != "" {
		if out.limit, err = strconv.Atoi(l); err != nil || out.limit < 1 || out.limit > MaxLimit {
			return out, invalidParam("limit", "want 1 to "+strconv.Itoa(MaxLimit))
		}
	}
	return out, nil
}

// results handles GET /v1/results?after=&wait=&limit=.
func (s *Server) results(c echo.Context) error {
	client, status, e := s.readable(c)
	if e != nil {
		return s.fail(c, status, e)
	}
	q, e := parseResultsQuery(c.QueryParams())
	if e != nil {
		return s.fail(c, http.StatusBadRequest, e)
	}
	page, err := s.poll(c.Request().Context(), client, q)
	if err != nil {
		return s.unreadable(c, err)
	}
	next := q.after
	if len(page) > 0 {
		next = records.Cursor{Seq: page[len(page)-1].Seq}
	}
	s.m.requests.WithLabelValues("200").Inc()
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, resultsBody(page, next))
}

// poll reads a page, and while it is empty looks again every pollEvery
// until q.wait has passed (or the app went away).
func (s *Server) poll(ctx context.Context, client string, q resultsQuery) ([]records.Result, error) {
	until := time.Now().Add(q.wait)
	for {
		rctx, cancel := context.WithTimeout(ctx, recordsDeadline)
		page, err := s.records.Results(rctx, client, q.after.Seq, q.after.Since, q.limit)
		cancel()
		if err != nil || len(page) > 0 || !time.Now().Before(until) {
			return page, err
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(pollEvery):
		}
	}
}

type resultView struct {
	ID        json.RawMessage `json:"id"`
	CommandID string          `json:"command_id"`
	DeviceID  string          `json:"device_id"`
	Outcome   string          `json:"outcome"`
	DoneAt    time.Time       `json:"done_at"`
}

// resultsBody is {"results":[{…,"result":<raw>}, …],"next":"<cursor>"}.
func resultsBody(page []records.Result, next records.Cursor) []byte {
	b := []byte(`{"results":[`)
	for i, r := range page {
		if i > 0 {
			b = append(b, ',')
		}
		v, _ := json.Marshal(resultView{ID: json.RawMessage(r.MsgID), CommandID: r.CommandID, DeviceID: r.DeviceID, Outcome: r.Outcome, DoneAt: r.DoneAt})
		b = append(b, withResult(v, r.Body)...)
	}
	b = append(b, `],"next":"`...)
	b = append(b, next.String()...) // base64url or RFC 3339: nothing to escape
	return append(b, `"}`...)
}
