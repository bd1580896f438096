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

func sentEvent(i int) BatchedEvent {
	return NewEvent(EventSent, NewCommandID(), "app-1", "d-1", `"m`+string(rune('a'+i%26))+`"`, time.Unix(0, int64(1000+i)))
}

// Events posted together go as one batch that says every fact of each,
// its event id included; a lone event goes as a single event.
func TestEventBatcherGathersEvents(t *testing.T) {
	p := &posted{}
	b := NewEventBatcher(p.post, nil)
	b.wait = time.Hour // the batch goes when flushed, however slow the machine
	var want []BatchedEvent
	for i := range 3 {
		want = append(want, sentEvent(i))
		if err := b.Add("x.events", "", want[i]); err != nil {
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
		if e != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, e, want[i])
		}
	}

	lone := sentEvent(9)
	b.wait = time.Millisecond // and a batch goes by itself once it is due
	if err := b.Add("x.events", "", lone); err != nil {
		t.Fatal(err)
	}
	single := waitPosted(t, p, 2)[1]
	if single.Headers[HeaderEvent] != string(EventSent) || single.Headers[HeaderEventID] != lone.ID || single.MessageId != lone.CommandID ||
		single.Headers[HeaderEventAt] != lone.At || single.Headers[HeaderMsgID] != lone.MsgID || single.Headers[HeaderClientID] != lone.ClientID {
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
		if err := b.Add("x.events", "", sentEvent(i)); err != nil {
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

// A batcher posts to the exchange and routing key of its first event (the
// cashier's refusals go to the commands exchange, key refused), and
// refuses events for another.
func TestEventBatcherKeepsItsRoutingKey(t *testing.T) {
	p := &keyed{}
	b := NewEventBatcher(p.post, nil)
	b.wait = time.Hour
	refused := func() BatchedEvent {
		return NewEvent(EventRefused, NewCommandID(), "app-1", "d-1", `"m"`, time.Now())
	}
	for range 2 {
		if err := b.Add("x.commands", RoutingKeyRefused, refused()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add("x.commands", "", refused()); !errors.Is(err, errMixedExchanges) {
		t.Errorf("an event for another routing key: %v, want refused", err)
	}
	if err := b.Add("x.events", RoutingKeyRefused, refused()); !errors.Is(err, errMixedExchanges) {
		t.Errorf("an event for another exchange: %v, want refused", err)
	}
	b.Flush()
	b.wait = time.Millisecond
	if err := b.Add("x.commands", RoutingKeyRefused, refused()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(p.routes()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := p.routes(); len(got) != 2 || got[0] != "x.commands/refused batch" || got[1] != "x.commands/refused refused" {
		t.Errorf("posted %q, want a batch then a lone refusal, both to x.commands/refused", got)
	}
}

// keyed records where a batcher posts, and what.
type keyed struct {
	mu  sync.Mutex
	got []string
}

func (k *keyed) post(exchange, key string, msg amqp.Publishing) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.got = append(k.got, exchange+"/"+key+" "+msg.Headers[HeaderEvent].(string))
	return nil
}

func (k *keyed) routes() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.got...)
}

// BenchmarkEventBatcher is a role's cost of one explicit event, batches
// of EventBatchMax posted to a poster that keeps nothing.
func BenchmarkEventBatcher(b *testing.B) {
	id, at := NewCommandID(), time.Now()
	eb := NewEventBatcher(func(string, string, amqp.Publishing) error { return nil }, nil)
	b.ReportAllocs()
	for b.Loop() {
		_ = eb.Add("x.events", "", NewEvent(EventDelivered, id, "app-1", "d-1", `"m1"`, at))
	}
	eb.Flush()
}
