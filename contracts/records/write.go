package records

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"cafe/contracts"
)

// Event is one step of a command's history, as the ledger writes it.
type Event struct {
	ID        string // unique per event: writing it twice changes nothing
	Kind      contracts.EventKind
	CommandID string
	ClientID  string
	DeviceID  string
	MsgID     string // the app's id token; "" for a one-way command
	At        time.Time
	Outcome   contracts.Outcome // done and dead
	Result    []byte            // done and dead: what the app gets over MQTT (nil for a dead result)
	Accepted  time.Time         // accepted: when the cashier received it
}

// Status is how far a command has got; it only moves forward.
type Status int16

// The statuses, in order.
const (
	StatusQueued    Status = 1
	StatusSent      Status = 2
	StatusDone      Status = 3
	StatusDelivered Status = 4
)

var statusNames = map[Status]string{StatusQueued: "queued", StatusSent: "sent", StatusDone: "done", StatusDelivered: "delivered"}

func (s Status) String() string { return statusNames[s] }

// statusOf is the status an event moves its command to.
func statusOf(k contracts.EventKind) Status {
	switch k {
	case contracts.EventSent:
		return StatusSent
	case contracts.EventDone, contracts.EventDead:
		return StatusDone
	case contracts.EventDelivered:
		return StatusDelivered
	}
	return StatusQueued
}

// doneLock is held by every batch that numbers results (see the package doc).
const doneLock = 0x6361666502

const (
	insertEvent = `INSERT INTO cafe_events (event_id, command_id, kind, at, outcome)
		VALUES ($1, $2, $3, $4, nullif($5, '')) ON CONFLICT (event_id) DO NOTHING`
	upsertCommand = `INSERT INTO cafe_commands (command_id, client_id, device_id, msg_id, status, accepted_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (command_id) DO UPDATE SET
			status = greatest(cafe_commands.status, excluded.status),
			accepted_at = coalesce(cafe_commands.accepted_at, excluded.accepted_at),
			updated_at = greatest(cafe_commands.updated_at, excluded.updated_at)`
	setResult = `UPDATE cafe_commands SET result = $2, outcome = $3, done_at = $4, done_seq = nextval('cafe_done_seq')
		WHERE command_id = $1 AND done_seq IS NULL`
)

// Write records events in one transaction: all of them or none.
func (s *Store) Write(ctx context.Context, events []Event) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	defer tx.Rollback(ctx)
	b := &pgx.Batch{}
	if numbersResults(events) {
		b.Queue("SELECT pg_advisory_xact_lock($1)", doneLock)
	}
	// Rows are locked in command order (two ledgers' batches then cannot
	// deadlock); results are numbered in the batch's order, which is the
	// queue's: the order they finished.
	sorted := slices.Clone(events)
	slices.SortStableFunc(sorted, func(a, b Event) int { return strings.Compare(a.CommandID, b.CommandID) })
	for _, e := range sorted {
		queueEvent(b, e)
	}
	for _, e := range events {
		if e.Result != nil {
			b.Queue(setResult, e.CommandID, e.Result, string(e.Outcome), e.At)
		}
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ledger commit: %w", err)
	}
	return nil
}

func numbersResults(events []Event) bool {
	for _, e := range events {
		if e.Result != nil {
			return true
		}
	}
	return false
}

func queueEvent(b *pgx.Batch, e Event) {
	var accepted *time.Time
	if !e.Accepted.IsZero() {
		accepted = &e.Accepted
	}
	b.Queue(insertEvent, e.ID, e.CommandID, string(e.Kind), e.At, string(e.Outcome))
	b.Queue(upsertCommand, e.CommandID, e.ClientID, e.DeviceID, e.MsgID, int16(statusOf(e.Kind)), accepted, e.At)
}

// DeleteBefore removes commands not updated since cutoff and events older
// than it, at most limit of each; it returns how many rows went.
func (s *Store) DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	for _, q := range []string{
		`DELETE FROM cafe_commands WHERE command_id IN (SELECT command_id FROM cafe_commands WHERE updated_at < $1 LIMIT $2)`,
		`DELETE FROM cafe_events WHERE event_id IN (SELECT event_id FROM cafe_events WHERE at < $1 LIMIT $2)`,
	} {
		tag, err := s.pool.Exec(ctx, q, cutoff, limit)
		if err != nil {
			return n, fmt.Errorf("ledger retention: %w", err)
		}
		n += tag.RowsAffected()
	}
	return n, nil
}
