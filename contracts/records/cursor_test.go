package records_test

import (
	"errors"
	"testing"
	"time"

	"cafe/contracts/records"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []records.Cursor{{Seq: 1}, {Seq: 1 << 62}, {Since: time.Unix(0, 1_700_000_000_123_456_789)}} {
		got, err := records.ParseCursor(c.String())
		if err != nil || got.Seq != c.Seq || !got.Since.Equal(c.Since) {
			t.Errorf("%+v → %q → %+v, %v", c, c.String(), got, err)
		}
	}
}

func TestParseCursor(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     records.Cursor
		bad      bool
	}{
		{name: "empty: from the oldest", in: ""},
		{name: "a time", in: "2026-01-02T03:04:05Z", want: records.Cursor{Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{name: "garbage", in: "xyz", bad: true},
		{name: "not base64", in: "c1!!", bad: true},
		{name: "unknown kind", in: "c1" + "eDE", bad: true},  // "x1"
		{name: "negative", in: "c1" + "cy0x", bad: true},     // "s-1"
		{name: "leading zero", in: "c1" + "czAx", bad: true}, // "s01"
		{name: "not a number", in: "c1" + "c2E", bad: true},  // "sa"
		{name: "time zero", in: "c1" + "dDA", bad: true},     // "t0"
		{name: "overflow", in: "c1" + "czk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", bad: true},
		{name: "too long", in: "c1" + string(make([]byte, 100)), bad: true},
		{name: "no prefix", in: "czE", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := records.ParseCursor(tc.in)
			if tc.bad {
				if !errors.Is(err, records.ErrBadCursor) {
					t.Fatalf("ParseCursor(%q) = %+v, %v; want ErrBadCursor", tc.in, got, err)
				}
				return
			}
			if err != nil || got.Seq != tc.want.Seq || !got.Since.Equal(tc.want.Since) {
				t.Fatalf("ParseCursor(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseCursor(f *testing.F) {
	f.Add("c1czE")
	f.Add("2026-01-02T03:04:05Z")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := records.ParseCursor(s)
		if err != nil || s == "" {
			return
		}
		if c.Seq < 0 {
			t.Fatalf("negative seq from %q", s)
		}
		again, err := records.ParseCursor(c.String())
		if err != nil || again.Seq != c.Seq || !again.Since.Equal(c.Since) {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", s, c, again, err)
		}
	})
}
