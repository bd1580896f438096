package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Batches of explicit events. Every message in the events queue costs
// RabbitMQ a quorum-queue enqueue, a delivery and a settle, so a barista,
// a caller and the cashier gather their "sent", "delivered" and "refused"
// events (Event) for up to
// EventBatchWait, or EventBatchMax of them, and post them as one message:
// HeaderEvent EventBatch, no other header, the body a JSON array of
// BatchedEvent. Under load that makes the two explicit events per command
// a small fraction of a message; a lone command's events still go within
// EventBatchWait. The guarantee is the one of a single event (fire and
// forget, see Event), for the batch: it is lost only if the connection
// fails at the instant it is posted, or the process dies while it waits.
const (
	EventBatch     = "batch"               // HeaderEvent of a batch
	EventBatchMax  = 256                   // events in one batch at most (the sender's)
	EventBatchWait = 5 * time.Millisecond  // how long the first event of a batch waits for others
	MaxBatchEvents = 1024                  // events in one batch a reader accepts
	MaxBatchBytes  = MaxBatchEvents * 1024 // body of a batch a reader accepts
)

// BatchedEvent is one explicit event in a batch: the same facts as the
// headers of the message Event makes.
type BatchedEvent struct {
	Kind      EventKind `json:"kind"`
	ID        string    `json:"id"` // HeaderEventID
	CommandID string    `json:"command_id"`
	ClientID  string    `json:"client_id"`
	DeviceID  string    `json:"device_id"`
	MsgID     string    `json:"msg_id,omitempty"`
	At        int64     `json:"at"` // Unix nanoseconds
}

// ParseEventBatch reads a batch's body. Each event is checked by the
// reader (ids, kind), as a single event's headers are.
func ParseEventBatch(body []byte) ([]BatchedEvent, error) {
	if len(body) > MaxBatchBytes {
		return nil, fmt.Errorf("a batch of %d bytes, over the %d-byte limit", len(body), MaxBatchBytes)
	}
	var evs []BatchedEvent
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, fmt.Errorf("a batch that is not a JSON array of events: %w", err)
	}
	if len(evs) == 0 || len(evs) > MaxBatchEvents {
		return nil, fmt.Errorf("a batch of %d events: want 1 to %d", len(evs), MaxBatchEvents)
	}
	return evs, nil
}

// EventBatcher posts explicit events in batches (see EventBatch): a role
// adds each event (Add) and the batcher posts through the publisher it
// wraps; call Flush when the role stops, before its links close.
// It batches for one exchange and routing key, the first it is given
// (the events exchange and "", or the cashier's commands exchange and
// RoutingKeyRefused).
type EventBatcher struct {
	post   func(exchange, key string, msg amqp.Publishing) error
	unsent func(events int) // events lost because their batch could not be posted
	wait   time.Duration    // EventBatchWait

	mu       sync.Mutex
	exchange string
	key      string
	pending  []BatchedEvent
	timer    *time.Timer // running while events wait
}

// NewEventBatcher batches events for post (a fire-and-forget publish);
// unsent is told how many events a failed post lost.
func NewEventBatcher(post func(exchange, key string, msg amqp.Publishing) error, unsent func(events int)) *EventBatcher {
	return &EventBatcher{post: post, unsent: unsent, wait: EventBatchWait}
}

// errMixedExchanges guards the one exchange and key a batcher serves.
var errMixedExchanges = errors.New("an event batcher posts to one exchange with one routing key")

// Add adds ev (made by NewEvent) to the batch for exchange and key,
// posting the batch when it is full; the events of a batch that could not
// be posted are counted by unsent. Events come as BatchedEvent, not as
// messages: building a message's header table for each event only to read
// it back here was most of an event's cost (profiled in cafe up at 64
// commands in flight: 0.14 s of the caller's 0.18 s posting "delivered";
// 9 allocations an event then, 1 now, BenchmarkEventBatcher).
func (b *EventBatcher) Add(exchange, key string, ev BatchedEvent) error {
	b.mu.Lock()
	if b.exchange != "" && (b.exchange != exchange || b.key != key) {
		b.mu.Unlock()
		return errMixedExchanges
	}
	b.exchange, b.key = exchange, key
	b.pending = append(b.pending, ev)
	if len(b.pending) >= EventBatchMax {
		batch := b.take()
		b.mu.Unlock()
		b.sendCounted(exchange, key, batch)
		return nil
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.wait, b.Flush)
	}
	b.mu.Unlock()
	return nil
}

// take empties the batch; b.mu is held.
func (b *EventBatcher) take() []BatchedEvent {
	batch := b.pending
	b.pending = nil
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return batch
}

// Flush posts the events waiting, if any. Nil-safe.
func (b *EventBatcher) Flush() {
	if b == nil {
		return
	}
	b.mu.Lock()
	batch, exchange, key := b.take(), b.exchange, b.key
	b.mu.Unlock()
	if len(batch) > 0 {
		b.sendCounted(exchange, key, batch)
	}
}

func (b *EventBatcher) sendCounted(exchange, key string, batch []BatchedEvent) {
	if b.send(exchange, key, batch) != nil && b.unsent != nil {
		b.unsent(len(batch))
	}
}

// send posts batch as one message: a lone event as Event makes it (so a
// reader of single events reads it), more as a batch.
func (b *EventBatcher) send(exchange, key string, batch []BatchedEvent) error {
	if len(batch) == 1 {
		return b.post(exchange, key, batch[0].Publishing())
	}
	body, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	return b.post(exchange, key, amqp.Publishing{MessageId: batch[0].CommandID, Headers: amqp.Table{HeaderEvent: EventBatch}, Body: body})
}
