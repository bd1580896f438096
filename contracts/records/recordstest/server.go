package recordstest

import (
	"context"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/records"
)

// PostgresBin is where Server looks for initdb and pg_ctl:
// CAFE_TEST_POSTGRES_BIN, else the newest Debian PostgreSQL under
// /usr/lib/postgresql (deploy/postgres.sh installs the distribution's
// postgresql, whichever major version that is), else Debian's 15.
func PostgresBin() string {
	if bin := os.Getenv("CAFE_TEST_POSTGRES_BIN"); bin != "" {
		return bin
	}
	best, bestV := "/usr/lib/postgresql/15/bin", -1
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	for _, d := range dirs {
		bin := filepath.Dir(d)
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(bin))); err == nil && v > bestV {
			best, bestV = bin, v
		}
	}
	return best
}

// Server is a PostgreSQL server of the test's own (its own data directory
// and port), for tests that stop and start the server itself, which the
// shared one must never be. It listens on 127.0.0.1 only, trusts every
// local login, and runs with fsync off (a test's data need not survive the
// machine; a crash of the server, Stop("immediate"), is still recovered
// from its WAL).
type Server struct {
	t    testing.TB
	bin  string
	data string
	log  string
	port int
	as   []string // the command prefix that runs as the data directory's owner
	up   bool     // running
	ever bool     // it has run: its port is fixed
	held []int    // the processes Freeze stopped (Linux)
	set  []string // settings of the caller's (-c name=value), after the defaults
}

// NewServer initialises a data directory in a t.TempDir and starts a
// server on it, stopped when the test ends. The test fails when the
// PostgreSQL binaries are not installed (PostgresBin): deploy/postgres.sh,
// which the tests' setup runs, installs them. As root, the server
// runs as the postgres OS user (PostgreSQL refuses to run as root).
// pg_ctl detaches the server, so a test killed before its cleanup (go
// test -timeout) leaves it running: ps shows it as postgres -D
// /tmp/Test…/data; stop it with pg_ctl -D that stop -m immediate.
// settings (name=value) are passed to the server after its own, so they
// may override them: "autovacuum=off", as on the CI machines.
func NewServer(t testing.TB, settings ...string) *Server {
	t.Helper()
	bin := PostgresBin()
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			t.Fatalf("no PostgreSQL server binaries in %s (%v): run `bash deploy/postgres.sh` (it installs them) or set CAFE_TEST_POSTGRES_BIN", bin, err)
		}
	}
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log"), set: settings}
	if os.Geteuid() == 0 {
		s.as = ownBy(t, dir)
	}
	s.run(30*time.Second, "initdb", "-D", s.data, "-U", "postgres", "--auth=trust", "--no-sync", "--no-instructions", "-E", "UTF8")
	s.Start()
	t.Cleanup(func() {
		s.Thaw()
		if s.up {
			s.pgCtl("stop", "-m", "immediate")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := records.CreateDatabase(ctx, s.URL()); err != nil {
		t.Fatalf("create the test database on the private server: %v", err)
	}
	return s
}

// ownBy hands dir over to the postgres OS user and returns the prefix
// that runs a command as it.
func ownBy(t testing.TB, dir string) []string {
	t.Helper()
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatalf("running as root and there is no postgres user to run PostgreSQL as (the postgresql package creates it: run `bash deploy/postgres.sh`): %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's parent is 0700 root's; postgres must get through it.
	if err := os.Chmod(filepath.Dir(dir), 0o711); err != nil {
		t.Fatal(err)
	}
	runuser, err := osexec.LookPath("runuser")
	if err != nil {
		t.Fatalf("running as root and no runuser to run PostgreSQL as postgres (apt-get install util-linux): %v", err)
	}
	return []string{runuser, "-u", "postgres", "--"}
}

// URL is the server's cafe_test database (created by NewServer), as the
// postgres superuser. The test has the server to itself, so no schema is
// needed.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/cafe_test?sslmode=disable", s.port)
}

// Addr is the host:port the server listens on; the same across restarts.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Start starts the server and waits until it accepts connections. The
// first start picks a free port; later ones reuse it, so clients
// reconnect to the same address.
func (s *Server) Start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		if !s.ever {
			_, port, _ := net.SplitHostPort(brokertest.SpareAddr(s.t))
			s.port, _ = strconv.Atoi(port)
		}
		opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=50", s.port)
		for _, kv := range s.set {
			opts += " -c " + kv
		}
		out, err := s.pgCtlErr("start", "-w", "-t", "30", "-l", s.log, "-o", opts)
		if err == nil {
			s.up, s.ever = true, true
			return
		}
		// Someone took the port between SpareAddr and the server's bind:
		// only the first start may move.
		logged, _ := os.ReadFile(s.log)
		if attempt < 3 && !s.ever && strings.Contains(string(logged), "Address already in use") {
			continue
		}
		s.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(logged))
	}
}

// Stop stops the server: mode "fast" (every session ended with FATAL
// admin shutdown, 57P01, open transactions rolled back, a checkpoint) or
// "immediate" (the server killed: a crash, recovered from the WAL at the
// next Start).
func (s *Server) Stop(mode string) {
	s.t.Helper()
	if mode != "fast" && mode != "immediate" && mode != "smart" {
		s.t.Fatalf("pg_ctl stop mode %q: want fast, immediate or smart", mode)
	}
	s.pgCtl("stop", "-w", "-t", "30", "-m", mode)
	s.up = false
}

func (s *Server) pgCtl(args ...string) {
	s.t.Helper()
	if out, err := s.pgCtlErr(args...); err != nil {
		logged, _ := os.ReadFile(s.log)
		s.t.Fatalf("pg_ctl %s: %v\n%s\n%s", strings.Join(args, " "), err, out, tail(logged))
	}
}

func (s *Server) pgCtlErr(args ...string) ([]byte, error) {
	return s.command(40*time.Second, "pg_ctl", append([]string{"-D", s.data}, args...)...)
}

func (s *Server) run(timeout time.Duration, name string, args ...string) {
	s.t.Helper()
	if out, err := s.command(timeout, name, args...); err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, out)
	}
}

func (s *Server) command(timeout time.Duration, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	argv := append(append(append([]string{}, s.as...), filepath.Join(s.bin, name)), args...)
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = filepath.Dir(s.data) // the postgres user may not read the test's working directory
	return cmd.CombinedOutput()
}

// Log is the server's log so far (for a failing test's message).
func (s *Server) Log() string {
	logged, _ := os.ReadFile(s.log)
	return string(logged)
}

func tail(b []byte) string {
	const keep = 4000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}
