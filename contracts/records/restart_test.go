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

// A pool whose connections the server ended (a restart quicker than the
// pool's liveness check: connections used within the last second are not
// pinged) reads (a record, the duplicate check's lookup), writes and
// answers a ping at once, without being reopened.
func TestQuickRestartLeavesNoDeadConnections(t *testing.T) {
	srv := recordstest.NewServer(t)
	w := recordstest.Migrated(t, srv.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := records.Open(srv.URL(), true, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	calls := []struct {
		name string
		call func() error
	}{
		{"read", func() error {
			if _, err := r.Command(ctx, "app-1", "1"); err != records.ErrNotFound {
				return fmt.Errorf("want ErrNotFound, got %v", err)
			}
			return nil
		}},
		{"pending", func() error { _, err := r.Pending(ctx, "app-1", []string{"1"}); return err }},
		{"results", func() error { _, err := r.Results(ctx, "app-1", 0, time.Time{}, 10); return err }},
		{"ping", func() error { return r.Ping(ctx) }},
		{"write", func() error { return w.Write(ctx, []records.Event{accepted()}) }},
		{"retention", func() error { _, err := w.DeleteBefore(ctx, time.Now().Add(-time.Hour), 1); return err }},
	}
	for _, mode := range []string{"fast", "immediate"} {
		for _, c := range calls {
			for i := range 2 {
				if err := c.call(); err != nil {
					t.Fatalf("%s %d before the %s restart: %v", c.name, i, mode, err)
				}
			}
			srv.Stop(mode)
			srv.Start()
			if err := c.call(); err != nil {
				t.Errorf("first %s after the %s restart: %v", c.name, mode, err)
			}
		}
	}
	if got := recordstest.Count(t, srv.URL(), "SELECT count(*) FROM cafe_events"); got != 2*3 {
		t.Errorf("%d events, want %d (three writes of one event, twice)", got, 2*3)
	}
}

// accepted is a new command's accepted event.
func accepted() records.Event {
	cmd, now := contracts.NewCommandID(), time.Now()
	return records.Event{ID: "accepted:" + cmd, Kind: contracts.EventAccepted, CommandID: cmd, ClientID: "app-1",
		DeviceID: "d-1", MsgID: "2", At: now, Accepted: now}
}
