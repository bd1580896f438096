package cashier_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
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

// refusalPoster records the refusals the cashier posts, by command, and
// fails every post when told to.
type refusalPoster struct {
	mu     sync.Mutex
	routes []string
	events []contracts.BatchedEvent
	fail   error
}

func (p *refusalPoster) Post(exchange, key string, m amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.routes = append(p.routes, exchange+"/"+key)
	if m.Headers[contracts.HeaderEvent] == contracts.EventBatch {
		evs, _ := contracts.ParseEventBatch(m.Body)
		p.events = append(p.events, evs...)
		return nil
	}
	kind, _ := m.Headers[contracts.HeaderEvent].(string)
	msgID, _ := m.Headers[contracts.HeaderMsgID].(string)
	p.events = append(p.events, contracts.BatchedEvent{Kind: contracts.EventKind(kind), CommandID: m.MessageId, MsgID: msgID})
	return nil
}

// msgIDs are the app's ids of the refusals posted so far, and where they went.
func (p *refusalPoster) msgIDs() ([]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for _, e := range p.events {
		if e.Kind == contracts.EventRefused {
			ids = append(ids, e.MsgID)
		}
	}
	return ids, slices.Clone(p.routes)
}

// A command RabbitMQ refused for certain (nacked, returned) gets a refusal
// for the ledger, to the commands exchange with key refused, with its
// command id; one whose confirm did not come (it may be queued), or that
// was never sent (blocked, no channel), and an accepted one get none.
// Each case is followed by a nacked command, whose refusal comes after any
// the case posted.
func TestRefusalsOnlyForDefiniteRefusals(t *testing.T) {
	failures := map[string]error{
		`"nacked"`:   amqplink.ErrNacked,
		`"returned"`: fmt.Errorf("%w (NO_ROUTE)", amqplink.ErrReturned),
		`"timeout"`:  fmt.Errorf("%w: %w", amqplink.ErrConfirmTimeout, context.DeadlineExceeded),
		`"lost"`:     amqplink.ErrConfirmLost,
		`"blocked"`:  amqplink.ErrBlocked,
		`"offline"`:  amqplink.ErrNotConnected,
	}
	q := &fakeQueue{failOn: func(m amqp.Publishing) error {
		return failures[contracts.ReadMeta(m.Headers).MsgID]
	}}
	s := newServer(t, q)
	p := &refusalPoster{}
	s.UseRefusals(p)
	post := func(id string) {
		t.Helper()
		do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: `{"jsonrpc":"2.0","method":"on","id":` + id + `}`})
	}
	want := []string{}
	for i, id := range []string{`"returned"`, `"timeout"`, `"lost"`, `"blocked"`, `"offline"`, `"fine"`} {
		post(id)
		if failures[id] == amqplink.ErrNacked || errors.Is(failures[id], amqplink.ErrReturned) {
			want = append(want, id)
		}
		marker := fmt.Sprintf(`"nacked-%d"`, i)
		failures[marker] = amqplink.ErrNacked
		post(marker)
		want = append(want, marker)
		brokertest.Eventually(t, 5*time.Second, "the refusal of "+marker, func() bool {
			ids, _ := p.msgIDs()
			return slices.Contains(ids, marker)
		})
	}
	ids, routes := p.msgIDs()
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("refusals for %q, want %q", ids, want)
	}
	top := contracts.DefaultTopology()
	for _, r := range routes {
		if r != top.CommandsExchange()+"/"+contracts.RoutingKeyRefused {
			t.Errorf("a refusal posted to %s", r)
		}
	}
	for _, m := range q.published() {
		if id := contracts.ReadMeta(m.Headers).MsgID; id == `"fine"` {
			for _, e := range p.events {
				if e.CommandID == m.MessageId {
					t.Errorf("the accepted command %s got a refusal", id)
				}
			}
		}
	}
}

// A refusal that cannot be posted (no channel) is counted: its id stays
// pending in the ledger.
func TestUnsentRefusalsAreCounted(t *testing.T) {
	s := newServer(t, &fakeQueue{failOn: func(amqp.Publishing) error { return amqplink.ErrNacked }})
	s.UseRefusals(&refusalPoster{fail: amqplink.ErrNotConnected})
	res, _ := do(t, s, call{path: "/v1/devices/lamp-1/commands", token: tokenApp1, body: one})
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	brokertest.Eventually(t, 5*time.Second, "the unsent refusal counted", func() bool {
		return metric(t, s, "cafe_cashier_refusals_unsent_total") == "1"
	})
}
