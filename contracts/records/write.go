package records

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
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

// Each batch is one statement, whatever its size (with the advisory lock
// before it when it numbers results), sent in one round trip: pgx's batch
// runs in one implicit transaction, so all of it commits or none. The
// statement upserts every command the batch touches, one row each, merged
// in Go (an upsert may not touch a row twice): its status only moves
// forward, its history gains the events it lacks (jsonb ||: the row's
// entry wins, so an event written twice changes nothing), and a command
// without a result takes the batch's first one. Numbers for the results
// are reserved as one block (setval under the advisory lock), in the
// batch's order; a number left unused (the command had a result already)
// is a gap, which cursors do not mind.
const (
	// upsertRows is the batch's rows: unnest in the select list (a
	// ProjectSet, row by row), not in FROM, where each of the fourteen
	// arrays would be a function scan of its own materialised into a
	// tuplestore; their buffers, allocated and freed by every batch, made
	// the backend's malloc grow and shrink its heap (brk) each time, and
	// the kernel's TLB flushes and page faults for that were a quarter of
	// the backend's CPU (perf of BenchmarkWrite/pipeline).
	upsertRows = `SELECT unnest($1::text[]) AS id, unnest($2::text[]) AS client, unnest($3::text[]) AS device, unnest($4::text[]) AS msg,
		unnest($5::smallint[]) AS status, unnest($6::timestamptz[]) AS accepted, unnest($7::timestamptz[]) AS updated,
		unnest($8::jsonb[]) AS history, unnest($9::bytea[]) AS result, unnest($10::text[]) AS outcome, unnest($11::timestamptz[]) AS done_at,
		unnest($12::bigint[]) AS ord, unnest($13::timestamptz[]) AS recorded, unnest($14::timestamptz[]) AS refused`
	upsertTail = `
		ON CONFLICT (command_id) DO UPDATE SET
			status = greatest(cafe_commands.status, excluded.status),
			accepted_at = coalesce(cafe_commands.accepted_at, excluded.accepted_at),
			updated_at = greatest(cafe_commands.updated_at, excluded.updated_at),
			refused_at = coalesce(cafe_commands.refused_at, excluded.refused_at),
			history = excluded.history || cafe_commands.history,
			result = CASE WHEN cafe_commands.done_seq IS NULL THEN excluded.result ELSE cafe_commands.result END,
			outcome = CASE WHEN cafe_commands.done_seq IS NULL THEN excluded.outcome ELSE cafe_commands.outcome END,
			done_at = CASE WHEN cafe_commands.done_seq IS NULL THEN excluded.done_at ELSE cafe_commands.done_at END,
			done_seq = coalesce(cafe_commands.done_seq, excluded.done_seq)`
	upsertCommands = `INSERT INTO cafe_commands (command_id, client_id, device_id, msg_id, status, accepted_at, updated_at, history, result, outcome, done_at, done_seq, recorded_at, refused_at)
		SELECT id, client, device, msg, status, accepted, updated, history, result, outcome, done_at, ord, recorded, refused
		FROM (` + upsertRows + `) t` + upsertTail
	// upsertNumbered also numbers the batch's results: $12 is each
	// command's place among them (1…$15), NULL for a command without one;
	// a command whose row now holds a number of the batch's block (it had
	// no result before) gets its row in cafe_results.
	upsertNumbered = `WITH last AS (SELECT setval('cafe_done_seq', nextval('cafe_done_seq') + $15 - 1) AS v),
		up AS (INSERT INTO cafe_commands (command_id, client_id, device_id, msg_id, status, accepted_at, updated_at, history, result, outcome, done_at, done_seq, recorded_at, refused_at)
			SELECT id, client, device, msg, status, accepted, updated, history, result, outcome, done_at, (SELECT v FROM last) - $15 + ord, recorded, refused
			FROM (` + upsertRows + `) t` + upsertTail + `
			RETURNING client_id, done_seq, command_id, done_at)
		INSERT INTO cafe_results (client_id, done_seq, command_id, done_at)
		SELECT client_id, done_seq, command_id, done_at FROM up WHERE done_seq > (SELECT v FROM last) - $15`
)

// Write records events in one transaction: all of them or none.
func (s *Store) Write(ctx context.Context, events []Event) error {
	cols, results := commandColumns(events)
	return s.do(ctx, func(c *pgxpool.Conn) error { return write(ctx, c, cols, results) })
}

// write sends one batch of the upsert (numbered when it has results) in
// one round trip.
func write(ctx context.Context, c *pgxpool.Conn, cols []any, results int) error {
	b := &pgx.Batch{}
	if results > 0 {
		b.Queue("SELECT pg_advisory_xact_lock($1)", doneLock)
		b.Queue(upsertNumbered, append(cols, int64(results))...)
	} else {
		b.Queue(upsertCommands, cols...)
	}
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	return nil
}

// row is one command's part of a batch, merged from its events.
type row struct {
	first    *Event    // its first event: client, device, the app's id token
	recorded time.Time // its earliest event: recorded_at, if the batch inserts it
	status   Status
	accepted time.Time
	updated  time.Time
	history  []byte     // its events as a JSON object, without the closing brace
	refused  *time.Time // its first refusal in the batch: refused_at, unless the row has one
	result   *Event     // its first result in the batch
	ord      int64      // the result's place among the batch's results, from 1
}

// commandColumns merges the events into one row per command, in command
// order (rows are locked in that order, so two ledgers cannot deadlock),
// and counts the commands that have a result in the batch, numbered in the
// batch's order (the queue's: the order they finished). An event id seen
// twice for a command keeps its first event.
func commandColumns(events []Event) ([]any, int) {
	type key struct{ cmd, id string }
	rows := map[string]*row{}
	seen := make(map[key]bool, len(events))
	results := 0
	for i := range events {
		e := &events[i]
		r, ok := rows[e.CommandID]
		if !ok {
			r = &row{first: e, status: statusOf(e.Kind), recorded: e.At, updated: e.At, history: []byte{'{'}}
			rows[e.CommandID] = r
		}
		if e.Kind == contracts.EventRefused && r.refused == nil {
			r.refused = &e.At
		}
		r.status = max(r.status, statusOf(e.Kind))
		if r.accepted.IsZero() {
			r.accepted = e.Accepted
		}
		if e.At.After(r.updated) {
			r.updated = e.At
		}
		if e.At.Before(r.recorded) {
			r.recorded = e.At
		}
		if k := (key{e.CommandID, e.ID}); !seen[k] {
			seen[k] = true
			if len(r.history) > 1 {
				r.history = append(r.history, ',')
			}
			r.history = appendStep(appendJSONString(r.history, e.ID), e)
		}
		if e.Result != nil && r.result == nil {
			results++
			r.result, r.ord = e, int64(results)
		}
	}
	keys := slices.Sorted(maps.Keys(rows))
	n := len(keys)
	cmds, clients, devices, msgs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stats, accepted, updated := make([]int16, n), make([]*time.Time, n), make([]time.Time, n)
	histories, bodies, outcomes, doneAt, ords := make([][]byte, n), make([][]byte, n), make([]*string, n), make([]*time.Time, n), make([]*int64, n)
	recorded, refusals := make([]time.Time, n), make([]*time.Time, n)
	for i, k := range keys {
		r := rows[k]
		cmds[i], clients[i], devices[i], msgs[i], stats[i], updated[i] = k, r.first.ClientID, r.first.DeviceID, r.first.MsgID, int16(r.status), r.updated
		if !r.accepted.IsZero() {
			accepted[i] = &r.accepted
		}
		histories[i], recorded[i], refusals[i] = append(r.history, '}'), r.recorded, r.refused
		if res := r.result; res != nil {
			o := string(res.Outcome)
			bodies[i], outcomes[i], doneAt[i], ords[i] = res.Result, &o, &res.At, &r.ord
		}
	}
	return []any{cmds, clients, devices, msgs, stats, accepted, updated, histories, bodies, outcomes, doneAt, ords, recorded, refusals}, results
}

// appendStep appends an event as its command's history keeps it: [kind,
// at in microseconds since 1970 (what timestamptz keeps), outcome if any].
func appendStep(b []byte, e *Event) []byte {
	b = appendJSONString(append(b, ':', '['), string(e.Kind))
	b = strconv.AppendInt(append(b, ','), e.At.UnixMicro(), 10)
	if e.Outcome != "" {
		b = appendJSONString(append(b, ','), string(e.Outcome))
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string: as it is when it needs no
// escaping (ids, kinds and outcomes do not), else as encoding/json writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s) // a string: cannot fail
			return append(b, q...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// DeleteBefore removes at most limit commands first recorded before
// cutoff, with their history and their result's number; it returns how
// many commands went (so a caller deleting in chunks stops at the first
// chunk short of limit).
func (s *Store) DeleteBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	var n int64
	err := s.do(ctx, func(c *pgxpool.Conn) error {
		return c.QueryRow(ctx, `WITH gone AS (
			DELETE FROM cafe_commands WHERE command_id IN (SELECT command_id FROM cafe_commands WHERE recorded_at < $1 LIMIT $2)
			RETURNING client_id, done_seq, history),
		results AS (DELETE FROM cafe_results r USING gone WHERE r.client_id = gone.client_id AND r.done_seq = gone.done_seq)
		SELECT count(*) FROM gone`, cutoff, limit).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("ledger retention: %w", err)
	}
	return n, nil
}

// tidyDue picks, among the ledger's tables for which autovacuum is off
// (the server's setting, or the table's autovacuum_enabled), those due
// what autovacuum would have done by now, by its own rules and the
// server's settings: a vacuum once the dead rows pass
// autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × its
// rows, an analyze once the rows changed since the last pass
// autovacuum_analyze_threshold + autovacuum_analyze_scale_factor × its
// rows (a table never vacuumed counts as empty; per-table settings are
// not read).
const tidyDue = `SELECT c.relname::text,
		t.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8
			+ current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0),
		t.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
			+ current_setting('autovacuum_analyze_scale_factor')::float8 * greatest(c.reltuples, 0)
	FROM pg_class c JOIN pg_stat_user_tables t ON t.relid = c.oid
	WHERE c.oid IN ('cafe_commands'::regclass, 'cafe_results'::regclass)
	AND (current_setting('autovacuum') = 'off' OR 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')))
	ORDER BY 1`

// Tidy does for the ledger's tables what autovacuum would, where it is
// off (as on the machines cafe's CI runs on): a row that an update
// replaced or retention deleted stays dead, in the table and in its
// indexes, until something vacuums it, so the table and its indexes
// only grow; and a table never analysed has no statistics for the
// planner. Tidy runs VACUUM, ANALYZE or both on each table due them
// (tidyDue) and returns what it ran; with autovacuum on it does nothing.
// ANALYZE skips the wide columns (history and result: statistics target
// 0 since migration 5), which cost it six times the vacuum in
// BenchmarkWrite/pipeline and serve no plan. The
// ledger's janitor calls it after each round of retention. It needs the
// counts of track_counts (on by default) and the tables' ownership (the
// ledger made them: VACUUM skips, with a warning, a table of another's).
func (s *Store) Tidy(ctx context.Context) ([]string, error) {
	var ran []string
	err := s.do(ctx, func(c *pgxpool.Conn) error {
		ran = ran[:0] // run again on a fresh connection: what ran before is done again, or skipped
		type due struct {
			table           string
			vacuum, analyze bool
		}
		rows, err := c.Query(ctx, tidyDue)
		if err != nil {
			return err
		}
		tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
			var d due
			err := r.Scan(&d.table, &d.vacuum, &d.analyze)
			return d, err
		})
		if err != nil {
			return err
		}
		for _, d := range tables {
			name := pgx.Identifier{d.table}.Sanitize()
			var sql string
			switch {
			case d.vacuum && d.analyze:
				sql = "VACUUM (ANALYZE) " + name
			case d.vacuum:
				sql = "VACUUM " + name
			case d.analyze:
				sql = "ANALYZE " + name
			default:
				continue
			}
			// VACUUM runs outside a transaction: Exec without arguments is
			// one simple query.
			if _, err := c.Exec(ctx, sql); err != nil {
				return err
			}
			ran = append(ran, strings.SplitN(sql, " "+name, 2)[0]+" "+d.table)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ledger vacuum: %w", err)
	}
	return ran, nil
}
