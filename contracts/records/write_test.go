package records_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// migratedStore is a store on a schema of the test's own, migrated; it is
// closed when the test ends.
func migratedStore(t *testing.T) (string, *records.Store) { return storeAt(t, 0) }

// storeAt is a store on a schema of the test's own migrated to version
// (0: the latest); it is closed when the test ends.
func storeAt(t *testing.T, version int) (string, *records.Store) {
	t.Helper()
	db := recordstest.Schema(t)
	s, err := records.Open(db, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	migrate := s.Migrate
	if version > 0 {
		migrate = func(ctx context.Context) error { return s.MigrateTo(ctx, version) }
	}
	if err := migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db, s
}

// allKinds are the events of a command that goes all the way, in order.
var allKinds = []contracts.EventKind{contracts.EventAccepted, contracts.EventSent, contracts.EventDone, contracts.EventDelivered}

// event is command cmd's event of kind k, its app's id n; a done event
// carries a result.
func event(k contracts.EventKind, cmd string, n int, at time.Time) records.Event {
	e := records.Event{ID: string(k) + ":" + cmd, Kind: k, CommandID: cmd, ClientID: "app-1", DeviceID: "lamp-1", MsgID: fmt.Sprint(n), At: at}
	if k == contracts.EventDone {
		e.Result, e.Outcome = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"level":80}}`, n), contracts.OutcomeReply
	}
	return e
}

// commands is n commands' events of kinds, command i's at at(i).
func commands(n int, kinds []contracts.EventKind, at func(i int) time.Time) []records.Event {
	var evs []records.Event
	for i := range n {
		cmd := contracts.NewCommandID()
		for _, k := range kinds {
			evs = append(evs, event(k, cmd, i, at(i)))
		}
	}
	return evs
}

// A command that goes all the way costs one row, its four events
// (accepted, sent, done, delivered) in its history, which cafe_events
// shows one per row; the test logs the bytes.
func TestRowsAndBytesPerCommand(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	const n = 2000
	evs := commands(n, allKinds, func(int) time.Time { return time.Now() })
	for lo := 0; lo < len(evs); lo += 512 {
		if err := s.Write(ctx, evs[lo:min(lo+512, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Write(ctx, evs[:512]); err != nil { // a redelivered batch
		t.Fatal(err)
	}
	cmds := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE status = 4 AND result IS NOT NULL")
	events := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events")
	if cmds != n || events != 4*n {
		t.Fatalf("%d delivered commands and %d events, want %d and %d", cmds, events, n, 4*n)
	}
	recordstest.Exec(t, db, "VACUUM ANALYZE cafe_commands, cafe_results")
	bytes := recordstest.Count(t, db, "SELECT (pg_total_relation_size('cafe_commands') + pg_total_relation_size('cafe_results'))::int")
	rows := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands")
	if rows != n {
		t.Errorf("%d rows for %d commands, want one each", rows, n)
	}
	t.Logf("per command: 1 row, %d bytes (table and indexes, %d commands)", bytes/n, n)
}

// Retention removes the commands first recorded before the cutoff with
// their history, a chunk of commands at a time, and nothing else; it
// counts the commands.
func TestDeleteBeforeRemovesWhatIsPastRetention(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	evs := commands(30, allKinds[:2], func(i int) time.Time {
		if i < 20 {
			return time.Now().Add(-8 * 24 * time.Hour) // the first 20 are a week old
		}
		return time.Now()
	})
	if err := s.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-7 * 24 * time.Hour)
	removed, chunks := int64(0), 0
	for ; chunks < 10; chunks++ {
		got, err := s.DeleteBefore(ctx, cutoff, 15)
		if err != nil {
			t.Fatal(err)
		}
		if got == 0 {
			break
		}
		if got > 15 {
			t.Fatalf("a chunk of 15 commands removed %d", got)
		}
		removed += got
	}
	cmds := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE msg_id::int >= 20")
	all := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands")
	events := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events")
	if removed != 20 || chunks < 2 || cmds != 10 || all != 10 || events != 20 {
		t.Errorf("removed %d commands in %d chunks, left %d commands (%d recent) and %d events; want 20 in 2 or more, the 10 recent commands and their 20 events",
			removed, chunks, all, cmds, events)
	}
}

// The same commands with each kind of event in a batch of its own (as at
// low load, when a command's events reach the ledger in separate
// batches): the bytes per command and how many of the command rows'
// updates were HOT (no index touched) are logged, to compare schemas.
func TestBytesPerCommandInSeparateBatches(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	const n, batch = 2000, 100
	start := time.Now()
	for lo := 0; lo < n; lo += batch {
		cmds := make([]string, batch)
		for i := range cmds {
			cmds[i] = contracts.NewCommandID()
		}
		for _, k := range allKinds {
			var evs []records.Event
			for i, cmd := range cmds {
				evs = append(evs, event(k, cmd, lo+i, time.Now()))
			}
			if err := s.Write(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	took := time.Since(start)
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE status = 4"); got != n {
		t.Fatalf("%d delivered, want %d", got, n)
	}
	bytes := recordstest.Count(t, db, "SELECT (pg_total_relation_size('cafe_commands') + pg_total_relation_size('cafe_results'))::int")
	s.Close() // the writers' backends report their statistics as they end
	var upd, hot int
	brokertest.Eventually(t, 10*time.Second, "PostgreSQL's statistics show the updates", func() bool {
		upd = recordstest.Count(t, db, "SELECT n_tup_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		hot = recordstest.Count(t, db, "SELECT n_tup_hot_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		return upd > 0
	})
	t.Logf("per command: %d bytes before vacuum (tables and indexes), written in %v; command row updates %d, of them HOT %d (%d commands)", bytes/n, took/n, upd, hot, n)
}

// Ids, kinds and outcomes that JSON must escape (records.Write takes any)
// come back as they went in, and one id written twice for a command
// (in one batch and in another) is one step.
func TestHistoryKeepsAnyText(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	cmd, at := contracts.NewCommandID(), time.Now()
	odd := []string{`quote"d`, `back\slash`, "tab\tnew\nline", "ünïcödé ✓", "<html>&", "\x01\x1f"} // no NUL: PostgreSQL text takes none, in either schema
	var evs []records.Event
	for i, s := range odd {
		e := event(contracts.EventSent, cmd, 0, at.Add(time.Duration(i)*time.Millisecond))
		e.ID, e.Kind, e.Outcome = "sent:"+s, contracts.EventKind("k"+s), contracts.Outcome("o"+s)
		evs = append(evs, e, e)
	}
	if err := s.Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, evs[:2]); err != nil {
		t.Fatal(err)
	}
	c, err := s.Command(ctx, "app-1", "0")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.History) != len(odd) {
		t.Fatalf("%d steps, want %d", len(c.History), len(odd))
	}
	for i, st := range c.History {
		if st.Status != "k"+odd[i] || st.Outcome != "o"+odd[i] {
			t.Errorf("step %d: %q %q, want %q %q", i, st.Status, st.Outcome, "k"+odd[i], "o"+odd[i])
		}
	}
	if got := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events WHERE event_id = $1", `sent:quote"d`); got != 1 {
		t.Errorf("the view shows %d events of id sent:quote\"d, want 1", got)
	}
}

// Retention counts from a command's earliest event: one accepted eight
// days ago and delivered just now goes with a 7-day retention (its last
// event does not keep it), and so does one whose earliest event comes
// second in its batch.
func TestRetentionCountsFromTheFirstEvent(t *testing.T) {
	db, s := migratedStore(t)
	ctx := context.Background()
	old, now := time.Now().Add(-8*24*time.Hour), time.Now()
	evs := commands(2, allKinds, func(int) time.Time { return now })
	for i := range 4 {
		evs[i].At = old // command 0: accepted, sent, done and delivered… all but the last long ago
	}
	evs[3].At = now
	late := evs[4:8]
	late[0], late[1] = late[1], late[0] // command 1: its sent written before its accepted
	late[1].At = old
	if err := s.Write(ctx, evs[:4]); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, late); err != nil {
		t.Fatal(err)
	}
	removed, err := s.DeleteBefore(ctx, now.Add(-7*24*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	if left := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands"); removed != 2 || left != 0 {
		t.Errorf("removed %d commands, %d left; want both gone", removed, left)
	}
}
