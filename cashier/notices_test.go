package cashier_test

import (
	"net/http"
	"strings"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// Cafe-Events: status marks the command and posts its queued notice once
// it is confirmed; another value is a 400 naming the header.
func TestCafeEventsStatus(t *testing.T) {
	q := &fakeQueue{}
	s := newServer(t, q)
	posted := &brokertest.Posted{}
	s.UseNotices(posted)
	res, body := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Events": "status"}})
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d %s", res.StatusCode, body)
	}
	cmd := q.published()[0]
	msgs, exchanges := posted.Messages()
	if cmd.Headers[contracts.HeaderEvents] != contracts.EventsStatus || len(msgs) != 1 ||
		msgs[0].Headers[contracts.HeaderNotice] != contracts.NoticeQueued || msgs[0].MessageId != cmd.MessageId ||
		exchanges[0] != contracts.DefaultTopology().ResultsExchange() {
		t.Fatalf("command headers %v; notices %+v to %v", cmd.Headers, msgs, exchanges)
	}
	res, _ = do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one})
	if msgs, _ := posted.Messages(); res.StatusCode != http.StatusAccepted || len(msgs) != 1 {
		t.Fatalf("without the header: status %d, %d notices, want none more", res.StatusCode, len(msgs))
	}
	for _, v := range []string{"all", "STATUS", "status,status"} {
		res, body := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one, headers: map[string]string{"Cafe-Events": v}})
		if res.StatusCode != http.StatusBadRequest || !contains(body, `"field":"Cafe-Events"`) {
			t.Errorf("Cafe-Events %q: %d %s, want 400 naming the header", v, res.StatusCode, body)
		}
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }
