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

// A command that goes all the way costs one command row and one row per
// event (accepted, sent, done, delivered); the test logs the bytes.
func TestRowsAndBytesPerCommand(t *testing.T) {
	db := recordstest.Schema(t)
	s, err := records.Open(db, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var evs []records.Event
	for i := range n {
		cmd, now := contracts.NewCommandID(), time.Now()
		base := records.Event{CommandID: cmd, ClientID: "app-1", DeviceID: "lamp-1", MsgID: fmt.Sprint(i), At: now}
		for _, k := range []contracts.EventKind{contracts.EventAccepted, contracts.EventSent, contracts.EventDone, contracts.EventDelivered} {
			e := base
			e.ID, e.Kind = string(k)+":"+cmd, k
			if k == contracts.EventDone {
				e.Result, e.Outcome = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"level":80}}`, i), contracts.OutcomeReply
			}
			evs = append(evs, e)
		}
	}
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
	recordstest.Exec(t, db, "VACUUM ANALYZE cafe_commands")
	recordstest.Exec(t, db, "VACUUM ANALYZE cafe_events")
	bytes := recordstest.Count(t, db, "SELECT (pg_total_relation_size('cafe_commands') + pg_total_relation_size('cafe_events'))::int")
	t.Logf("per command: 5 rows, %d bytes (tables and indexes, %d commands)", bytes/n, n)
}

// Retention removes the commands not updated since the cutoff and the
// events older than it, a chunk at a time, and nothing else.
func TestDeleteBeforeRemovesWhatIsPastRetention(t *testing.T) {
	db := recordstest.Schema(t)
	s, err := records.Open(db, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 30
	var evs []records.Event
	for i := range n {
		cmd, at := contracts.NewCommandID(), time.Now()
		if i < 20 {
			at = at.Add(-8 * 24 * time.Hour) // the first 20 are a week old
		}
		for _, k := range []contracts.EventKind{contracts.EventAccepted, contracts.EventSent} {
			evs = append(evs, records.Event{ID: string(k) + ":" + cmd, Kind: k, CommandID: cmd, ClientID: "app-1", DeviceID: "lamp-1", MsgID: fmt.Sprint(i), At: at})
		}
	}
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
		if got > 2*15 {
			t.Fatalf("a chunk of 15 removed %d rows", got)
		}
		removed += got
	}
	cmds := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands WHERE msg_id::int >= 20")
	all := recordstest.Count(t, db, "SELECT count(*) FROM cafe_commands")
	events := recordstest.Count(t, db, "SELECT count(*) FROM cafe_events")
	if removed != 20+40 || chunks < 3 || cmds != 10 || all != 10 || events != 20 {
		t.Errorf("removed %d rows in %d chunks, left %d commands (%d recent) and %d events; want 60 in 3 or more, the 10 recent commands and their 20 events",
			removed, chunks, all, cmds, events)
	}
}

// The same commands with each kind of event in a batch of its own (as at
// low load, when a command's events reach the ledger in separate
// batches): the bytes per command and how many of the command rows'
// updates were HOT (no index touched) are logged, to compare schemas.
func TestBytesPerCommandInSeparateBatches(t *testing.T) {
	db := recordstest.Schema(t)
	s, err := records.Open(db, false, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const n, batch = 2000, 100
	start := time.Now()
	for lo := 0; lo < n; lo += batch {
		cmds := make([]string, batch)
		for i := range cmds {
			cmds[i] = contracts.NewCommandID()
		}
		for _, k := range []contracts.EventKind{contracts.EventAccepted, contracts.EventSent, contracts.EventDone, contracts.EventDelivered} {
			var evs []records.Event
			for i, cmd := range cmds {
				e := records.Event{ID: string(k) + ":" + cmd, Kind: k, CommandID: cmd, ClientID: "app-1", DeviceID: "lamp-1", MsgID: fmt.Sprint(lo + i), At: time.Now()}
				if k == contracts.EventDone {
					e.Result, e.Outcome = fmt.Appendf(nil, `{"jsonrpc":"2.0","id":%d,"result":{"level":80}}`, lo+i), contracts.OutcomeReply
				}
				evs = append(evs, e)
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
	bytes := recordstest.Count(t, db, "SELECT (pg_total_relation_size('cafe_commands') + pg_total_relation_size('cafe_events'))::int")
	s.Close() // the writers' backends report their statistics as they end
	var upd, hot int
	brokertest.Eventually(t, 10*time.Second, "PostgreSQL's statistics show the updates", func() bool {
		upd = recordstest.Count(t, db, "SELECT n_tup_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		hot = recordstest.Count(t, db, "SELECT n_tup_hot_upd::int FROM pg_stat_user_tables WHERE relid = 'cafe_commands'::regclass")
		return upd > 0
	})
	t.Logf("per command: %d bytes before vacuum (tables and indexes), written in %v; command row updates %d, of them HOT %d (%d commands)", bytes/n, took/n, upd, hot, n)
}
