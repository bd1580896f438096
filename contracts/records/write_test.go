package records_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"cafe/contracts"
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
