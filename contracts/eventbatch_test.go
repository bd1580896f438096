package contracts

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// posted records what a batcher posts.
type posted struct {
	mu   sync.Mutex
	msgs []amqp.Publishing
	fail error
}

func (p *posted) post(_, _ string, msg amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msg)
	return p.fail
}

func (p *posted) all() []amqp.Publishing {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]amqp.Publishing(nil), p.msgs...)
}

func waitPosted(t *testing.T, p *posted, n int) []amqp.Publishing {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(p.all()) < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := p.all(); len(got) != n {
		t.Fatalf("%d messages posted, want %d", len(got), n)
	}
	return p.all()
}

func sentEvent(i int) amqp.Publishing {
	return Event(EventSent, NewCommandID(), "app-1", "d-1", `"m`+string(rune('a'+i%26))+`"`, time.Unix(0, int64(1000+i)))
}

// Events posted together go as one batch that says every fact of each,
// its event id included; a lone event goes as a single event.
func TestEventBatcherGathersEvents(t *testing.T) {
	p := &posted{}
	b := NewEventBatcher(p.post, nil)
	b.wait = time.Hour // the batch goes when flushed, however slow the machine
	var want []amqp.Publishing
	for i := range 3 {
		want = append(want, sentEvent(i))
		if err := b.Post("x.events", "", want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(p.all()); got != 0 {
		t.Fatalf("%d posts before the batch was due", got)
	}
	b.Flush()
	msg := waitPosted(t, p, 1)[0]
	if msg.Headers[HeaderEvent] != EventBatch {
		t.Fatalf("headers %v, want a batch", msg.Headers)
	}
	evs, err := ParseEventBatch(msg.Body)
	if err != nil || len(evs) != 3 {
		t.Fatalf("batch %s: %v", msg.Body, err)
	}
	for i, e := range evs {
		w := want[i]
		if e.CommandID != w.MessageId || e.ID != w.Headers[HeaderEventID] || e.Kind != EventSent || e.ClientID != "app-1" ||
			e.DeviceID != "d-1" || e.MsgID != w.Headers[HeaderMsgID] || e.At != w.Headers[HeaderEventAt] {
			t.Errorf("event %d: %+v, want the facts of %v", i, e, w.Headers)
		}
	}

	lone := sentEvent(9)
	b.wait = time.Millisecond // and a batch goes by itself once it is due
	if err := b.Post("x.events", "", lone); err != nil {
		t.Fatal(err)
	}
	single := waitPosted(t, p, 2)[1]
	if single.Headers[HeaderEvent] != string(EventSent) || single.Headers[HeaderEventID] != lone.Headers[HeaderEventID] || single.MessageId != lone.MessageId {
		t.Errorf("a lone event went as %v, want the event itself", single.Headers)
	}
}

// A full batch goes at once; a batch that cannot be posted is counted.
func TestEventBatcherFullAndFailed(t *testing.T) {
	p := &posted{fail: errors.New("no channel")}
	lost := 0
	b := NewEventBatcher(p.post, func(n int) { lost += n })
	b.wait = time.Hour // only a full batch goes
	for i := range EventBatchMax {
		if err := b.Post("x.events", "", sentEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(p.all()); got != 1 || lost != EventBatchMax {
		t.Fatalf("%d posts and %d lost after %d events, want the full batch posted at once and counted lost", got, lost, EventBatchMax)
	}
	b.Flush() // nothing waits
	if got := len(p.all()); got != 1 {
		t.Errorf("an empty flush posted: %d posts", got)
	}
	other := amqp.Publishing{MessageId: "x"}
	if err := b.Post("x.results", "result", other); err == nil {
		t.Error("a message that is not an event was not posted at once (its error lost)")
	}
}

func TestParseEventBatchRefusesBadBatches(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON": "garbage",
		"empty":    "[]",
		"object":   `{"kind":"sent"}`,
		"too many": "[" + strings.Repeat(`{"kind":"sent"},`, MaxBatchEvents) + `{"kind":"sent"}]`,
		"too big":  strings.Repeat(" ", MaxBatchBytes+1),
	} {
		if _, err := ParseEventBatch([]byte(body)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
