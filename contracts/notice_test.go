package contracts_test

import (
	"encoding/json"
	"testing"
	"time"

	"cafe/contracts"
)

// A notice is the documented envelope, with the app's id token as sent,
// and no JSON-RPC response can be read out of it.
func TestNoticeBody(t *testing.T) {
	at := time.Date(2026, 3, 1, 10, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct{ id, want string }{
		{"7", `{"cafe":"status","status":"queued","id":7,"command_id":"c1","at":"2026-03-01T10:00:00.123456789Z"}`},
		{`"a-7"`, `{"cafe":"status","status":"queued","id":"a-7","command_id":"c1","at":"2026-03-01T10:00:00.123456789Z"}`},
	} {
		got := contracts.NoticeBody(contracts.NoticeQueued, tc.id, "c1", at)
		if string(got) != tc.want || !json.Valid(got) {
			t.Errorf("NoticeBody(%s) = %s, want %s", tc.id, got, tc.want)
		}
		if err := contracts.CheckReply(got, []byte(tc.id)); err == nil {
			t.Errorf("%s passes as a JSON-RPC response", got)
		}
	}
}
