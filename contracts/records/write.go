package records

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
	// StatusRefused is a command RabbitMQ refused (the cashier answered
	// 503) and that never got further: it is never stored as a status
	// but read from a queued command with refused_at set, so a refusal
	// and the command's copy may be written in either order, and a later
	// sent or done (the commands queue took it after all: a nack from
	// the events queue on a cluster) still wins. It is final: it has no
	// result, and it does not hold its id (Pending).
	StatusRefused Status = 5
)

var statusNames = map[Status]string{StatusQueued: "queued", StatusSent: "sent", StatusDone: "done", StatusDelivered: "delivered", StatusRefused: "refused"}

func (s Status) String() string { return statusNames[s] }

// statusOf is the status an event moves its command to (a refusal
// leaves it queued and sets refused_at).
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

// Each batch is three statements, whatever its size: every event, every
// command it touches (one row each, merged in Go: an upsert may not touch
// a row twice), every first result. Numbers for the results are reserved
// as one block (setval under the advisory lock), in the batch's order;
// a number left unused (the command had a result already) is a gap, which
// cursors do not mind.
const (
	insertEvents = `INSERT INTO cafe_events (event_id, command_id, kind, at, outcome)
		SELECT id, cmd, kind, at, nullif(outcome, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS t(id, cmd, kind, at, outcome)
		ON CONFLICT (event_id) DO NOTHING`
	upsertCommands = `INSERT INTO cafe_commands (command_id, client_id, device_id, msg_id, status, accepted_at, updated_at, refused_at)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::timestamptz[], $7::timestamptz[], $8::timestamptz[])
		ON CONFLICT (command_id) DO UPDATE SET
			status = greatest(cafe_commands.status, excluded.status),
			accepted_at = coalesce(cafe_commands.accepted_at, excluded.accepted_at),
			updated_at = greatest(cafe_commands.updated_at, excluded.updated_at),
			refused_at = coalesce(cafe_commands.refused_at, excluded.refused_at)`
	setResults = `WITH last AS (SELECT setval('cafe_done_seq', nextval('cafe_done_seq') + $5 - 1) AS v)
		UPDATE cafe_commands c SET result = t.r, outcome = t.o, done_at = t.a, done_seq = (SELECT v FROM last) - $5 + t.ord
		FROM unnest($1::text[], $2::bytea[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS t(id, r, o, a, ord)
		WHERE c.command_id = t.id AND c.done_seq IS NULL`
)

// Write records events in one transaction: all of them or none.
func (s *Store) Write(ctx context.Context, events []Event) error {
	return s.do(ctx, func(c *pgxpool.Conn) error { return write(ctx, c, events) })
}

func write(ctx context.Context, c *pgxpool.Conn, events []Event) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	defer tx.Rollback(ctx)
	b := &pgx.Batch{}
	results := firstResults(events)
	if len(results) > 0 {
		b.Queue("SELECT pg_advisory_xact_lock($1)", doneLock)
	}
	b.Queue(insertEvents, eventColumns(events)...)
	b.Queue(upsertCommands, commandColumns(events)...)
	if len(results) > 0 {
		b.Queue(setResults, append(resultColumns(results), int64(len(results)))...)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("ledger commit: %w", err)
	}
	return nil
}

func eventColumns(events []Event) []any {
	n := len(events)
	ids, cmds, kinds, outcomes, ats := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
	for i, e := range events {
		ids[i], cmds[i], kinds[i], outcomes[i], ats[i] = e.ID, e.CommandID, string(e.Kind), string(e.Outcome), e.At
	}
	return []any{ids, cmds, kinds, ats, outcomes}
}

// commandColumns merges the events into one row per command, in command
// order: rows are locked in that order, so two ledgers cannot deadlock.
func commandColumns(events []Event) []any {
	rows := map[string]*Event{}
	status := map[string]Status{}
	refused := map[string]*time.Time{}
	for i := range events {
		e := &events[i]
		if e.Kind == contracts.EventRefused && refused[e.CommandID] == nil {
			refused[e.CommandID] = &e.At
		}
		r, ok := rows[e.CommandID]
		if !ok {
			merged := *e
			rows[e.CommandID], status[e.CommandID] = &merged, statusOf(e.Kind)
			continue
		}
		status[e.CommandID] = max(status[e.CommandID], statusOf(e.Kind))
		if r.Accepted.IsZero() {
			r.Accepted = e.Accepted
		}
		if e.At.After(r.At) {
			r.At = e.At
		}
	}
	keys := slices.Sorted(maps.Keys(rows))
	n := len(keys)
	cmds, clients, devices, msgs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stats, accepted, updated, refusals := make([]int16, n), make([]*time.Time, n), make([]time.Time, n), make([]*time.Time, n)
	for i, k := range keys {
		r := rows[k]
		cmds[i], clients[i], devices[i], msgs[i], stats[i], updated[i], refusals[i] = k, r.ClientID, r.DeviceID, r.MsgID, int16(status[k]), r.At, refused[k]
		if !r.Accepted.IsZero() {
			accepted[i] = &r.Accepted
		}
	}
	return []any{cmds, clients, devices, msgs, stats, accepted, updated, refusals}
}

// firstResults is each command's first result in the batch, in the
// batch's order (the queue's: the order they finished).
func firstResults(events []Event) []Event {
	var out []Event
	seen := map[string]bool{}
	for _, e := range events {
		if e.Result != nil && !seen[e.CommandID] {
			seen[e.CommandID] = true
			out = append(out, e)
		}
	}
	return out
}

func resultColumns(results []Event) []any {
	n := len(results)
	ids, bodies, outcomes, ats := make([]string, n), make([][]byte, n), make([]string, n), make([]time.Time, n)
	for i, e := range results {
		ids[i], bodies[i], outcomes[i], ats[i] = e.CommandID, e.Result, string(e.Outcome), e.At
	}
	return []any{ids, bodies, outcomes, ats}
}

// DeleteBefore removes commands not updated since cutoff and events older
// than it, at most limit of each; it returns how many rows went.
func (s *Store) DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	for _, q := range []string{
		`DELETE FROM cafe_commands WHERE command_id IN (SELECT command_id FROM cafe_commands WHERE updated_at < $1 LIMIT $2)`,
		`DELETE FROM cafe_events WHERE event_id IN (SELECT event_id FROM cafe_events WHERE at < $1 LIMIT $2)`,
	} {
		err := s.do(ctx, func(c *pgxpool.Conn) error {
			tag, err := c.Exec(ctx, q, cutoff, limit)
			n += tag.RowsAffected()
			return err
		})
		if err != nil {
			return n, fmt.Errorf("ledger retention: %w", err)
		}
	}
	return n, nil
}
