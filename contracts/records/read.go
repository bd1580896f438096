package records

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is a command the app has no record of (never sent, or past
// retention).
var ErrNotFound = errors.New("no such command")

// Step is one entry of a command's history.
type Step struct {
	Status  string    `json:"status"` // queued, sent, done, delivered, dead (dead-lettered), or refused
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome,omitempty"`
}

// Command is what the ledger knows of one command.
type Command struct {
	CommandID  string
	ClientID   string
	DeviceID   string
	MsgID      string
	Status     Status
	AcceptedAt time.Time
	Outcome    string
	Result     []byte // nil until done
	DoneAt     time.Time
	History    []Step
}

// Command returns the latest command of client with the app's id token
// msgID, with its history.
func (s *Store) Command(ctx context.Context, client, msgID string) (*Command, error) {
	var c *Command
	err := s.do(ctx, func(conn *pgxpool.Conn) (err error) {
		c, err = command(ctx, conn, client, msgID)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	return c, err
}

// commandQuery is the latest command of an app ($1) with an id token ($2):
// cafe_commands_by_id.
const commandQuery = `SELECT command_id, device_id, status, accepted_at, outcome, result, done_at, refused_at, history
	FROM cafe_commands WHERE client_id = $1 AND msg_id = $2
	ORDER BY accepted_at DESC NULLS LAST, updated_at DESC LIMIT 1`

func command(ctx context.Context, conn *pgxpool.Conn, client, msgID string) (*Command, error) {
	c := &Command{ClientID: client, MsgID: msgID}
	var accepted, done, refused *time.Time
	var outcome *string
	var history []byte
	err := conn.QueryRow(ctx, commandQuery, client, msgID).
		Scan(&c.CommandID, &c.DeviceID, &c.Status, &accepted, &outcome, &c.Result, &done, &refused, &history)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	c.AcceptedAt, c.DoneAt, c.Outcome = deref(accepted), deref(done), derefS(outcome)
	if c.Status == StatusQueued && refused != nil {
		c.Status = StatusRefused
	}
	if c.History, err = steps(history); err != nil {
		return nil, fmt.Errorf("command %s: %w", c.CommandID, err)
	}
	if c.Status == StatusRefused {
		// The queued step is RabbitMQ's copy for the ledger, which the
		// events queue took though the commands queue refused the command:
		// it was never queued to run.
		c.History = slices.DeleteFunc(c.History, func(st Step) bool { return st.Status == StatusQueued.String() })
	}
	return c, nil
}

// stepOrder is the order of a command's events that happened at the same
// time; a kind not in it comes after them.
var stepOrder = []string{"accepted", "refused", "sent", "done", "dead", "delivered"}

// steps is a command's history column as its steps, in the order they
// happened (the order of their kinds for the same time): each entry is
// [kind, at in µs since 1970, outcome if any] (see write.go).
func steps(history []byte) ([]Step, error) {
	var entries map[string][]json.RawMessage
	if err := json.Unmarshal(history, &entries); err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	type ranked struct {
		Step
		micros int64
		rank   int
	}
	out := make([]ranked, 0, len(entries))
	for id, e := range entries {
		var st ranked
		if len(e) < 2 || json.Unmarshal(e[0], &st.Status) != nil || json.Unmarshal(e[1], &st.micros) != nil ||
			(len(e) > 2 && json.Unmarshal(e[2], &st.Outcome) != nil) {
			return nil, fmt.Errorf("history entry %q: want [kind, microseconds, outcome]", id)
		}
		st.rank = slices.Index(stepOrder, st.Status)
		if st.rank < 0 {
			st.rank = len(stepOrder)
		}
		st.At = time.UnixMicro(st.micros) // local time, as pgx reads a timestamptz
		if st.Status == "accepted" {
			st.Status = StatusQueued.String()
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b ranked) int { return cmp.Or(cmp.Compare(a.micros, b.micros), cmp.Compare(a.rank, b.rank)) })
	list := make([]Step, len(out))
	for i, st := range out {
		list[i] = st.Step
	}
	return list, nil
}

// pendingRow is the one condition of a pending command c, for Pending and
// PendingAmong ($3 StatusDone, $4 StatusQueued): not done yet, and not a
// refused command that never got further.
const pendingRow = `c.status < $3 AND NOT (c.status = $4 AND c.refused_at IS NOT NULL)`

// Pending reports which of msgIDs client has a command for that is not
// done yet. A refused command (refused_at set, never sent) is not pending:
// RabbitMQ did not take it, so the app may send its id again.
func (s *Store) Pending(ctx context.Context, client string, msgIDs []string) ([]string, error) {
	var pending []string
	err := s.do(ctx, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(ctx, `SELECT DISTINCT msg_id FROM cafe_commands c
		WHERE client_id = $1 AND msg_id = ANY($2) AND `+pendingRow, client, msgIDs, int16(StatusDone), int16(StatusQueued))
		if err == nil {
			pending, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	return pending, nil
}

// ClientMsg is one app's id token: the key of the ids PendingAmong looks up.
type ClientMsg struct {
	Client string
	MsgID  string
}

// PendingAmong is Pending for the ids of several apps in one query: which
// of pairs have a command not done yet (and not refused), each pair once,
// in no particular order. A pair is matched on both its app and its id,
// so two apps that use the same id never see each other's commands. The
// cashier's duplicate check sends the pairs of the submissions that
// arrived while its previous lookup ran (cashier/duplicates.go): the
// query's fixed cost (a round trip, the executor's start, the system
// calls on both sides), which is most of a lookup's, is paid once for all
// of them; each pair is an index probe of cafe_commands_by_id. Pairs all
// of one app (a lone submission's) take Pending's query.
func (s *Store) PendingAmong(ctx context.Context, pairs []ClientMsg) ([]ClientMsg, error) {
	clients, ids := make([]string, len(pairs)), make([]string, len(pairs))
	one := true // all of one app: Pending's query
	for i, p := range pairs {
		clients[i], ids[i] = p.Client, p.MsgID
		one = one && p.Client == pairs[0].Client
	}
	if one && len(pairs) > 0 {
		found, err := s.Pending(ctx, pairs[0].Client, ids)
		pending := make([]ClientMsg, len(found))
		for i, id := range found {
			pending[i] = ClientMsg{Client: pairs[0].Client, MsgID: id}
		}
		return pending, err
	}
	var pending []ClientMsg
	err := s.do(ctx, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(ctx, `SELECT q.client_id, q.msg_id FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS q (client_id, msg_id)
		WHERE EXISTS (SELECT FROM cafe_commands c WHERE c.client_id = q.client_id AND c.msg_id = q.msg_id
			AND `+pendingRow+`)`, clients, ids, int16(StatusDone), int16(StatusQueued))
		if err == nil {
			pending, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ClientMsg])
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	return pending, nil
}

// Result is one finished command, as GET /v1/results lists it.
type Result struct {
	Seq       int64
	CommandID string
	DeviceID  string
	MsgID     string
	Outcome   string
	DoneAt    time.Time
	Body      []byte
}

// The queries of Results: an app's ($1) results after a number, or
// finished since a time ($2), up to $3. cafe_results's primary key
// (client_id, done_seq) gives the order and the bound; each result's row
// is one lookup by its command id.
const (
	resultsAfter = `SELECT r.done_seq, r.command_id, c.device_id, c.msg_id, c.outcome, r.done_at, c.result
		FROM cafe_results r JOIN cafe_commands c ON c.command_id = r.command_id
		WHERE r.client_id = $1 AND r.done_seq > $2 ORDER BY r.done_seq LIMIT $3`
	resultsSince = `SELECT r.done_seq, r.command_id, c.device_id, c.msg_id, c.outcome, r.done_at, c.result
		FROM cafe_results r JOIN cafe_commands c ON c.command_id = r.command_id
		WHERE r.client_id = $1 AND r.done_at >= $2 ORDER BY r.done_seq LIMIT $3`
)

// Results returns up to limit of client's results numbered after seq, in
// the order they finished; after a time instead (seq 0 and since set), the
// first results that finished at or after it.
func (s *Store) Results(ctx context.Context, client string, seq int64, since time.Time, limit int) ([]Result, error) {
	q, args := resultsAfter, []any{client, seq, limit}
	if seq == 0 && !since.IsZero() {
		q, args = resultsSince, []any{client, since, limit}
	}
	var out []Result
	err := s.do(ctx, func(conn *pgxpool.Conn) error {
		rows, err := conn.Query(ctx, q, args...)
		if err == nil {
			out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Result, error) {
				var res Result
				err := r.Scan(&res.Seq, &res.CommandID, &res.DeviceID, &res.MsgID, &res.Outcome, &res.DoneAt, &res.Body)
				return res, err
			})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ledger read: %w", err)
	}
	return out, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func derefS(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Footprint is how much the ledger's tables hold: rows, and bytes on disk
// (pg_total_relation_size of cafe_commands and cafe_results: the tables,
// their indexes and TOAST).
type Footprint struct {
	Commands int64 // rows of cafe_commands (a command's history is in its row; cafe_events is a view of it)
	Bytes    int64 // of both tables, their indexes and TOAST
}

// Footprint measures the tables now (cafe bench reads it before and after
// a phase). Counting rows reads every row: seconds on a large ledger.
func (s *Store) Footprint(ctx context.Context) (Footprint, error) {
	var f Footprint
	err := s.do(ctx, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(ctx, `SELECT count(*), pg_total_relation_size('cafe_commands'::regclass) + pg_total_relation_size('cafe_results'::regclass)
			FROM cafe_commands`).Scan(&f.Commands, &f.Bytes)
	})
	if err != nil {
		return Footprint{}, fmt.Errorf("the ledger's tables: %w", err)
	}
	return f, nil
}
