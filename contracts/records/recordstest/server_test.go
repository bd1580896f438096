package recordstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cafe/contracts/records/recordstest"
)

// query runs SELECT 1 on a new connection within timeout.
func query(url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// The private server answers, refuses while stopped (either way), answers
// on the same address once started again, and says nothing while frozen.
func TestServerStopsStartsAndFreezes(t *testing.T) {
	s := recordstest.NewServer(t)
	u, addr := s.URL(), s.Addr()
	if err := query(u, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"fast", "immediate"} {
		s.Stop(mode)
		if err := query(u, 10*time.Second); err == nil {
			t.Fatalf("a query with the server stopped (%s) succeeded", mode)
		}
		s.Start()
		if s.Addr() != addr {
			t.Fatalf("restarted on %s, was %s", s.Addr(), addr)
		}
		if err := query(u, 10*time.Second); err != nil {
			t.Fatalf("after the %s restart: %v", mode, err)
		}
	}
	s.Freeze()
	if err := query(u, 300*time.Millisecond); err == nil {
		t.Fatal("a query to the frozen server succeeded")
	}
	s.Thaw()
	if err := query(u, 10*time.Second); err != nil {
		t.Fatalf("after the thaw: %v", err)
	}
}
