// Package recordstest gives each test a PostgreSQL schema of its own in
// the test database, dropped when the test ends (Schema), or, for a test
// that stops and starts PostgreSQL itself, a server of its own
// (NewServer): the shared server is never stopped.
package recordstest

import (
	"context"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"cafe/contracts/brokertest"
	"cafe/contracts/procstat"
	"cafe/contracts/records"
)

// BaseURL is the test database: CAFE_TEST_POSTGRES_URL, default the local
// server's cafe_test database (created if missing).
func BaseURL() string {
	if u := os.Getenv("CAFE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://127.0.0.1:5432/cafe_test?sslmode=disable"
}

// Schema creates a schema of the test's own and returns the URL of the
// test database with it as search_path; the schema is dropped, with
// everything in it, when the test ends.
func Schema(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := BaseURL()
	if err := records.CreateDatabase(ctx, base); err != nil {
		t.Fatalf("PostgreSQL is not reachable at %s (%v): run `bash deploy/postgres.sh` or set CAFE_TEST_POSTGRES_URL", base, err)
	}
	name := strings.ToLower(strings.NewReplacer("-", "_", ".", "_").Replace(brokertest.ID(t, "s")))
	exec(t, base, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() { exec(t, base, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE") })
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Migrated is a store on rawURL as the ledger opens it (writable, 4
// connections), with its tables migrated; it is closed when the test ends.
func Migrated(t testing.TB, rawURL string) *records.Store {
	t.Helper()
	store, err := records.Open(rawURL, false, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return store
}

// Via is rawURL with its host and port replaced by addr (a brokertest.Proxy's).
func Via(rawURL, addr string) string {
	u, _ := url.Parse(rawURL)
	host, port, _ := net.SplitHostPort(addr)
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// Target is the host:port of rawURL, for a proxy in front of it.
func Target(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

// Exec runs sql on rawURL, failing the test on error.
func Exec(t testing.TB, rawURL, sql string, args ...any) { t.Helper(); exec(t, rawURL, sql, args...) }

func exec(t testing.TB, rawURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, ctx, rawURL)
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Count runs a counting query on rawURL.
func Count(t testing.TB, rawURL, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, ctx, rawURL)
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Conn is a connection to rawURL the test keeps (made within 10 s),
// closed when the test ends. Exec and Count, which a test may call in a
// polling loop, open and close their own instead.
func Conn(t testing.TB, rawURL string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := connect(t, ctx, rawURL)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// connect connects to rawURL within ctx, failing the test if it cannot.
func connect(t testing.TB, ctx context.Context, rawURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connect to %s: %v", rawURL, err)
	}
	return conn
}

// Statuses is the statuses of c's history, in order.
func Statuses(c *records.Command) []string {
	var out []string
	for _, st := range c.History {
		out = append(out, st.Status)
	}
	return out
}

// Named is rawURL with application_name app, so that BackendCPU finds the
// backends of a pool opened on it.
func Named(rawURL, app string) string {
	u, _ := url.Parse(rawURL)
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	return u.String()
}

// BackendCPU is the CPU the PostgreSQL backends named app have used
// (utime+stime of /proc/PID/stat, procstat).
func BackendCPU(b testing.TB, db, app string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn := connect(b, ctx, db) // closed at once: a reading leaves no backend behind
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1", app)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	var cpu time.Duration
	for _, pid := range pids {
		d, err := procstat.CPU("/proc", int(pid))
		if err != nil {
			b.Fatalf("PostgreSQL's backend: %v (the benchmark reads /proc of a local server)", err)
		}
		cpu += d
	}
	return cpu
}

// WAL is the server's write-ahead log position, in bytes: the difference
// of two readings is what the server logged between them, this test's
// writes and anything else on the server (other sessions' too).
func WAL(b testing.TB, db string) int64 {
	b.Helper()
	return int64(Count(b, db, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"))
}
