package records_test

import (
	"context"
	"testing"
	"time"

	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// A pool whose connections the server ended (a restart quicker than the
// pool's liveness check: connections used within the last second are not
// pinged) reads and writes at once, without being reopened.
func TestQuickRestartLeavesNoDeadConnections(t *testing.T) {
	srv := recordstest.NewServer(t)
	w, err := records.Open(srv.URL(), false, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := records.Open(srv.URL(), true, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	for _, mode := range []string{"fast", "immediate"} {
		for i := range 3 {
			if _, err := r.Command(ctx, "app-1", "1"); err != records.ErrNotFound {
				t.Fatalf("read %d before the %s restart: %v", i, mode, err)
			}
			if _, err := w.DeleteBefore(ctx, time.Now().Add(-time.Hour), 1); err != nil {
				t.Fatalf("write %d before the %s restart: %v", i, mode, err)
			}
		}
		start := time.Now()
		srv.Stop(mode)
		srv.Start()
		t.Logf("%s restart took %v", mode, time.Since(start).Round(time.Millisecond))
		if _, err := r.Command(ctx, "app-1", "1"); err != records.ErrNotFound {
			t.Errorf("first read after the %s restart: %v", mode, err)
		}
		if _, err := w.DeleteBefore(ctx, time.Now().Add(-time.Hour), 1); err != nil {
			t.Errorf("first write after the %s restart: %v", mode, err)
		}
	}
}
