package records

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in an app's results: after the result numbered Seq,
// or, before any result was read, from a time on. Apps see it only as the
// opaque token String returns and pass it back as GET /v1/results?after=.
type Cursor struct {
	Seq   int64
	Since time.Time // with Seq 0: the first results that finished at or after it
}

// ErrBadCursor is a token that is neither a cursor nor an RFC 3339 time.
var ErrBadCursor = errors.New("not a cursor from GET /v1/results, nor an RFC 3339 time")

// String is the cursor as an opaque token.
func (c Cursor) String() string {
	raw := "s" + strconv.FormatInt(c.Seq, 10)
	if c.Seq == 0 && !c.Since.IsZero() {
		raw = "t" + strconv.FormatInt(c.Since.UnixNano(), 10)
	}
	return "c1" + base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// ParseCursor reads an after= value: empty (from the oldest result kept),
// a token String made, or an RFC 3339 time (for the first call).
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 64 {
		return Cursor{}, ErrBadCursor
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return Cursor{Since: t}, nil
	}
	body, ok := strings.CutPrefix(s, "c1")
	if !ok {
		return Cursor{}, ErrBadCursor
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) < 2 {
		return Cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(string(raw[1:]), 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != string(raw[1:]) {
		return Cursor{}, ErrBadCursor
	}
	switch raw[0] {
	case 's':
		return Cursor{Seq: n}, nil
	case 't':
		if n == 0 {
			return Cursor{}, ErrBadCursor
		}
		return Cursor{Since: time.Unix(0, n)}, nil
	}
	return Cursor{}, ErrBadCursor
}
