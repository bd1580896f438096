package records_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cafe/contracts"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// The statements the ledger wrote with before migration 3 (one row per
// event in cafe_events), to fill a schema as it was.
const (
	v1InsertEvents = `INSERT INTO cafe_events (event_id, command_id, kind, at, outcome)
		SELECT id, cmd, kind, at, nullif(outcome, '')
		FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS t(id, cmd, kind, at, outcome)
		ON CONFLICT (event_id) DO NOTHING`
	v1UpsertCommand = `INSERT INTO cafe_commands (command_id, client_id, device_id, msg_id, status, accepted_at, updated_at, refused_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (command_id) DO UPDATE SET
			status = greatest(cafe_commands.status, excluded.status),
			accepted_at = coalesce(cafe_commands.accepted_at, excluded.accepted_at),
			updated_at = greatest(cafe_commands.updated_at, excluded.updated_at),
			refused_at = coalesce(cafe_commands.refused_at, excluded.refused_at)`
	v1SetResult = `UPDATE cafe_commands SET result = $2, outcome = $3, done_at = $4, done_seq = nextval('cafe_done_seq')
		WHERE command_id = $1 AND done_seq IS NULL`
	// v1History is how Command read the history before migration 3; it
	// runs on the view cafe_events after it.
	v1History = `SELECT kind, at, coalesce(outcome, '') FROM cafe_events WHERE command_id = $1
		ORDER BY at, array_position(ARRAY['accepted','refused','sent','done','dead','delivered'], kind)`
)

// writeV1 writes events one by one, as the ledger did before migration 3.
func writeV1(t *testing.T, db string, events []records.Event) {
	t.Helper()
	ctx := context.Background()
	conn := recordstest.Conn(t, db)
	status := map[contracts.EventKind]int16{contracts.EventAccepted: 1, contracts.EventRefused: 1, contracts.EventSent: 2, contracts.EventDone: 3, contracts.EventDead: 3, contracts.EventDelivered: 4}
	for _, e := range events {
		if _, err := conn.Exec(ctx, v1InsertEvents, []string{e.ID}, []string{e.CommandID}, []string{string(e.Kind)}, []time.Time{e.At}, []string{string(e.Outcome)}); err != nil {
			t.Fatal(err)
		}
		var accepted, refused *time.Time
		if !e.Accepted.IsZero() {
			accepted = &e.Accepted
		}
		if e.Kind == contracts.EventRefused {
			refused = &e.At
		}
		if _, err := conn.Exec(ctx, v1UpsertCommand, e.CommandID, e.ClientID, e.DeviceID, e.MsgID, status[e.Kind], accepted, e.At, refused); err != nil {
			t.Fatal(err)
		}
		if e.Result != nil {
			if _, err := conn.Exec(ctx, v1SetResult, e.CommandID, e.Result, string(e.Outcome), e.At); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// v1Steps is a command's history read as before migration 3.
func v1Steps(t *testing.T, conn *pgx.Conn, commandID string) []records.Step {
	t.Helper()
	rows, err := conn.Query(context.Background(), v1History, commandID)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (records.Step, error) {
		var st records.Step
		err := r.Scan(&st.Status, &st.At, &st.Outcome)
		if st.Status == "accepted" {
			st.Status = records.StatusQueued.String()
		}
		return st, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return steps
}

// v1Command is Command as it read a schema at version 1.
func v1Command(t *testing.T, conn *pgx.Conn, msgID string) *records.Command {
	t.Helper()
	ctx := context.Background()
	c := &records.Command{ClientID: "app-1", MsgID: msgID}
	var accepted, done, refused *time.Time
	var outcome *string
	if err := conn.QueryRow(ctx, `SELECT command_id, device_id, status, accepted_at, outcome, result, done_at, refused_at
		FROM cafe_commands WHERE client_id = $1 AND msg_id = $2
		ORDER BY accepted_at DESC NULLS LAST, updated_at DESC LIMIT 1`, "app-1", msgID).
		Scan(&c.CommandID, &c.DeviceID, &c.Status, &accepted, &outcome, &c.Result, &done, &refused); err != nil {
		t.Fatalf("command %s: %v", msgID, err)
	}
	if accepted != nil {
		c.AcceptedAt = *accepted
	}
	if done != nil {
		c.DoneAt = *done
	}
	if outcome != nil {
		c.Outcome = *outcome
	}
	c.History = v1Steps(t, conn, c.CommandID)
	if c.Status == records.StatusQueued && refused != nil {
		c.Status = records.StatusRefused
		c.History = slices.DeleteFunc(c.History, func(st records.Step) bool { return st.Status == records.StatusQueued.String() })
	}
	return c
}

// v4Results is Results as it read a schema before migration 5 (the
// results numbered in cafe_commands).
func v4Results(t *testing.T, conn *pgx.Conn, seq int64, since time.Time) []records.Result {
	t.Helper()
	q := `SELECT done_seq, command_id, device_id, msg_id, outcome, done_at, result FROM cafe_commands
		WHERE client_id = $1 AND done_seq > $2 ORDER BY done_seq LIMIT $3`
	args := []any{"app-1", seq, 1000}
	if seq == 0 && !since.IsZero() {
		q = `SELECT done_seq, command_id, device_id, msg_id, outcome, done_at, result FROM cafe_commands
			WHERE client_id = $1 AND done_seq IS NOT NULL AND done_at >= $2 ORDER BY done_seq LIMIT $3`
		args = []any{"app-1", since, 1000}
	}
	rows, err := conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (records.Result, error) {
		var res records.Result
		err := r.Scan(&res.Seq, &res.CommandID, &res.DeviceID, &res.MsgID, &res.Outcome, &res.DoneAt, &res.Body)
		return res, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// snapshot is everything the read API answers for the app's commands
// 0…n-1, as JSON: each command (history included), the list of results
// (from the start, after a number and since a time) and what is
// pending; with v1, the commands are read on it as before migration 3
// and the results as before migration 5.
func snapshot(t *testing.T, s *records.Store, v1 *pgx.Conn, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	var ids []string
	for i := range n {
		id := fmt.Sprint(i)
		ids = append(ids, id)
		var c *records.Command
		if v1 != nil {
			c = v1Command(t, v1, id)
		} else {
			var err error
			if c, err = s.Command(ctx, "app-1", id); err != nil {
				t.Fatalf("command %s: %v", id, err)
			}
		}
		b, _ := json.Marshal(c)
		out["command "+id] = string(b)
	}
	results := func(seq int64, since time.Time) []records.Result {
		if v1 != nil {
			return v4Results(t, v1, seq, since)
		}
		res, err := s.Results(ctx, "app-1", seq, since, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	b, _ := json.Marshal(results(0, time.Time{}))
	out["results"] = string(b)
	b, _ = json.Marshal(results(0, time.Now().Add(-time.Hour)))
	out["results since"] = string(b)
	b, _ = json.Marshal(results(int64(n/2), time.Time{}))
	out["results after half"] = string(b)
	pending, err := s.Pending(ctx, "app-1", ids)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pending)
	out["pending"] = fmt.Sprint(pending)
	return out
}

// populatedV1 fills a schema at version 2 with n commands of every kind
// of history: all the way; sent twice and a second result (a redelivery);
// dead-lettered; steps of several kinds at the same microsecond; only
// queued; only sent; a dead letter of a result after delivery; and
// refused (copy first, refusal first, refused then sent after all). It
// also leaves an event whose command is gone (past retention).
func populatedV1(t *testing.T) (string, *records.Store, []records.Event) {
	t.Helper()
	db, s := storeAt(t, 2)
	base := time.Now().Add(-time.Minute)
	var evs []records.Event
	for i := range 80 {
		cmd := contracts.NewCommandID()
		at := func(step int) time.Time {
			return base.Add(time.Duration(i)*time.Second + time.Duration(step)*1234567*time.Nanosecond)
		}
		ev := func(k contracts.EventKind, step int) records.Event {
			e := event(k, cmd, i, at(step))
			if k == contracts.EventAccepted {
				e.Accepted = e.At
			}
			return e
		}
		explicit := func(k contracts.EventKind, step int) records.Event {
			e := ev(k, step)
			e.ID = fmt.Sprintf("%s:%s-%d", k, cmd, step)
			return e
		}
		switch i % 8 {
		case 0:
			evs = append(evs, ev(contracts.EventAccepted, 0), explicit(contracts.EventSent, 1), ev(contracts.EventDone, 2), explicit(contracts.EventDelivered, 3))
		case 1:
			again := explicit(contracts.EventDone, 4)
			again.ID = "done:" + cmd + ":again" // a second result, kept in the history only
			again.Result = []byte(`{"jsonrpc":"2.0","id":1,"result":"second"}`)
			evs = append(evs, ev(contracts.EventAccepted, 0), explicit(contracts.EventSent, 1), explicit(contracts.EventSent, 2), ev(contracts.EventDone, 3), again, explicit(contracts.EventDelivered, 5))
		case 2:
			dead := ev(contracts.EventDead, 2)
			dead.ID, dead.Outcome, dead.Result = "dead:q:"+cmd, contracts.OutcomeDeadLetter, []byte(`{"jsonrpc":"2.0","id":2,"error":{"code":-32005,"message":"dead"}}`)
			evs = append(evs, ev(contracts.EventAccepted, 0), explicit(contracts.EventSent, 1), dead)
		case 3:
			same := []records.Event{explicit(contracts.EventDelivered, 1), ev(contracts.EventDone, 1), explicit(contracts.EventSent, 1)}
			evs = append(evs, ev(contracts.EventAccepted, 0))
			evs = append(evs, same...)
		case 4:
			evs = append(evs, ev(contracts.EventAccepted, 0))
		case 5:
			evs = append(evs, ev(contracts.EventAccepted, 0), explicit(contracts.EventSent, 1))
		case 6:
			deadResult := ev(contracts.EventDead, 4)
			deadResult.ID, deadResult.Outcome, deadResult.Result = "dead:results:"+cmd, contracts.OutcomeDeadLetter, nil
			evs = append(evs, explicit(contracts.EventDelivered, 3), ev(contracts.EventDone, 2), ev(contracts.EventAccepted, 0), deadResult) // out of order
		case 7:
			refused := explicit(contracts.EventRefused, 1)
			switch i % 3 {
			case 0:
				evs = append(evs, ev(contracts.EventAccepted, 0), refused) // the copy, then the refusal
			case 1:
				evs = append(evs, refused, ev(contracts.EventAccepted, 0), refused) // the other way round, the refusal twice
			case 2:
				evs = append(evs, ev(contracts.EventAccepted, 0), refused, explicit(contracts.EventSent, 2)) // refused, then sent after all
			}
		}
	}
	writeV1(t, db, evs)
	recordstest.Exec(t, db, `INSERT INTO cafe_events VALUES ('sent:orphan', 'gone', 'sent', now() - interval '8 days', NULL)`)
	return db, s, evs
}

// Migration 3 moves every command's history into its row: every answer
// of the read API is byte for byte what it was (the history in its
// order, the results and their numbers, what is pending), the old way of
// reading the history (cafe_events, now a view) gives the same, and
// writing the same events again afterwards changes nothing.
func TestMigrationKeepsEveryAnswer(t *testing.T) {
	db, s, evs := populatedV1(t)
	const n = 80
	conn := recordstest.Conn(t, db)
	before := snapshot(t, s, conn, n)
	v1 := map[string][]records.Step{}
	for i := range n {
		c := v1Command(t, conn, fmt.Sprint(i))
		v1[c.CommandID] = v1Steps(t, conn, c.CommandID) // all its events, as the old query read them
	}
	events := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events WHERE command_id <> 'gone'")

	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := recordstest.Count(t, db, "SELECT max(version) FROM cafe_schema_version"); got < 4 {
		t.Fatalf("schema version %d, want 4 or later", got)
	}
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE recorded_at IS DISTINCT FROM updated_at"); got != 0 {
		t.Errorf("%d commands recorded before migration 4 count their retention from another time than their last event", got)
	}
	sameAnswers(t, "after the migration", before, snapshot(t, s, nil, n))
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events"); got != events {
		t.Errorf("cafe_events shows %d events, want the %d of the commands kept (not the orphan)", got, events)
	}
	for cmd, want := range v1 {
		if got, _ := json.Marshal(v1Steps(t, conn, cmd)); string(got) != string(must(json.Marshal(want))) {
			t.Errorf("command %s read through the view: %s, want %s", cmd, got, must(json.Marshal(want)))
		}
	}

	// A redelivery of everything, now written by the new statements.
	writeAgain(t, s, evs)
	sameAnswers(t, "after the events were written again", before, snapshot(t, s, nil, n))
}

// sameAnswers fails the test for every answer of got not what it was in want.
func sameAnswers(t *testing.T, when string, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s %s:\n%s\nwant\n%s", k, when, got[k], w)
		}
	}
}

// writeAgain writes every event again, one batch each, an hour later (a
// copy read again gets a new time; its id is what counts).
func writeAgain(t *testing.T, s *records.Store, evs []records.Event) {
	t.Helper()
	for _, e := range evs {
		e.At = e.At.Add(time.Hour)
		if err := s.Write(context.Background(), []records.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// A new event for a migrated command joins its history in order; one
// already there (the same id) does not, even with another time.
func TestMigratedCommandTakesNewEvents(t *testing.T) {
	_, s, evs := populatedV1(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Command 5 was only sent: it is delivered now, and its sent comes again.
	var sent records.Event
	for _, e := range evs {
		if e.MsgID == "5" && e.Kind == contracts.EventSent {
			sent = e
		}
	}
	delivered := sent
	delivered.ID, delivered.Kind, delivered.At = "delivered:new", contracts.EventDelivered, sent.At.Add(time.Second)
	sent.At = sent.At.Add(-time.Hour)
	if err := s.Write(ctx, []records.Event{sent, delivered}); err != nil {
		t.Fatal(err)
	}
	c, err := s.Command(ctx, "app-1", "5")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(recordstest.Statuses(c)); got != "[queued sent delivered]" || c.Status != records.StatusDelivered {
		t.Errorf("history %s, status %v; want [queued sent delivered], delivered", got, c.Status)
	}
	if !c.History[1].At.Equal(sent.At.Add(time.Hour).Truncate(time.Microsecond)) {
		t.Errorf("the sent step moved to %v: the event written again changed it", c.History[1].At)
	}
}

// A history PostgreSQL holds but the ledger did not write (edited by
// hand, or by a later version) is an error of that read, not a crash or a
// wrong answer.
func TestMalformedHistoryIsAnError(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	if err := s.Write(ctx, commands(1, allKinds, func(int) time.Time { return time.Now() })); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"sent:x": "no array"}`,
		`{"sent:x": []}`,
		`{"sent:x": ["sent"]}`,
		`{"sent:x": [1, 2]}`,
		`{"sent:x": ["sent", "soon"]}`,
		`{"sent:x": ["sent", 1.5]}`,
		`{"sent:x": ["sent", 99999999999999999999]}`,
		`{"sent:x": ["sent", 1, 7]}`,
		`[]`,
		`"a string"`,
	} {
		recordstest.Exec(t, db, "UPDATE cafe_commands SET history = $1::jsonb", bad)
		if c, err := s.Command(ctx, "app-1", "0"); err == nil {
			t.Errorf("history %s read as %+v, want an error", bad, c.History)
		}
	}
	recordstest.Exec(t, db, "UPDATE cafe_commands SET history = $1::jsonb", `{"odd:b": ["odd", 1], "sent:a": ["sent", 1], "done:c": ["done", 1, "reply"]}`)
	c, err := s.Command(ctx, "app-1", "0")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(recordstest.Statuses(c)); got != "[sent done odd]" {
		t.Errorf("history %s, want a kind it does not know after those it does, at the same time: [sent done odd]", got)
	}
}

// A command redelivered many times has a long history: 5 000 sends in
// one batch and as many again in another (the same ids, later) keep
// 5 000 steps, in order.
func TestLongHistory(t *testing.T) {
	_, s := migratedStore(t)
	ctx := context.Background()
	cmd, base := contracts.NewCommandID(), time.Now()
	evs := []records.Event{event(contracts.EventAccepted, cmd, 0, base)}
	for i := range 5000 {
		e := event(contracts.EventSent, cmd, 0, base.Add(time.Duration(5000-i)*time.Millisecond))
		e.ID = fmt.Sprintf("sent:%s-%d", cmd, i)
		evs = append(evs, e)
	}
	for range 2 {
		if err := s.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for i := range evs[1:] {
			evs[1+i].At = evs[1+i].At.Add(time.Hour)
		}
	}
	c, err := s.Command(ctx, "app-1", "0")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.History) != 5001 || !slices.IsSortedFunc(c.History, func(a, b records.Step) int { return a.At.Compare(b.At) }) ||
		!c.History[5000].At.Equal(base.Add(5*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("%d steps (sorted: %v), want 5001 in order with the first times kept", len(c.History),
			slices.IsSortedFunc(c.History, func(a, b records.Step) int { return a.At.Compare(b.At) }))
	}
}
