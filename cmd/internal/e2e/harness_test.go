package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cafe/contracts/brokertest"
)

// Bounds of the harness's waits. Generous: they only decide how long a
// broken test takes to fail, never how long a passing one takes.
const (
	readyTimeout = 20 * time.Second // a process answers /readyz 200
	stopTimeout  = 8 * time.Second  // a process stopped at cleanup exits after SIGTERM
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running binary. It belongs to the test that started it,
// which stops it at its end; its methods take the test (or subtest) that
// calls them, since only that one may be failed from its goroutine.
type proc struct {
	owner  testing.TB
	name   string // for messages: the binary and a role, e.g. "barista#2"
	cmd    *exec.Cmd
	out    lockedBuffer // stdout and stderr, interleaved as written
	stdout lockedBuffer // stdout alone
	done   chan struct{}
	state  *os.ProcessState // set when done is closed
}

// baseEnv is this process's environment without any CAFE_* variable (a
// developer's shell settings must not reach the binaries), pointed at the
// test brokers.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAFE_") {
			env = append(env, kv)
		}
	}
	// No credentials: each service logs in as its role, derived from this
	// machine's auth key, as on the machine `task up` sets up. Apps are
	// sent to the same Mosquitto (CAFE_TEST_MQTT_URL may name another).
	return append(env, "CAFE_AMQP_URL="+brokertest.AMQPBase(), "CAFE_MQTT_URL="+brokertest.MQTTBase(),
		"CAFE_SESSION_MQTT_URL="+brokertest.MQTTBase(), "CAFE_AUTH_KEY_FILE="+brokertest.KeyFile())
}

// start runs binary with env (KEY=value, added to baseEnv) and args. The
// process is stopped when the test t ends (SIGTERM, then SIGKILL), and its
// output is logged if the test failed.
func start(t testing.TB, name, binary string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{owner: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, binary), args...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout = io.MultiWriter(&p.stdout, &p.out)
	p.cmd.Stderr = &p.out
	dieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait() // the exit status is in ProcessState
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	return p
}

func (p *proc) cleanup() {
	if !p.exited() {
		// Gently first: a barista or caller killed outright leaves its
		// persistent MQTT session on the shared broker, a device its last will.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			p.owner.Errorf("%s did not exit within %v of SIGTERM at cleanup; killed", p.name, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	out := p.out.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		p.owner.Errorf("%s reported a data race", p.name)
	}
	if p.owner.Failed() {
		p.owner.Logf("output of %s (%s):\n%s", p.name, p.state, indent(out))
	}
}

func indent(s string) string {
	if s == "" {
		return "\t(nothing)"
	}
	return "\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t")
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 when a signal killed it). If it is still running then, the test
// fails and the process is killed.
func (p *proc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s still running %v later; killed it", p.name, timeout)
	}
	return p.state.ExitCode()
}

// stop sends SIGTERM and checks that the process exits 0 within timeout.
// It returns how long the exit took.
func (p *proc) stop(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, timeout); code != 0 {
		t.Fatalf("%s exited with %d after SIGTERM, want 0", p.name, code)
	}
	return time.Since(began)
}

// waitOutput waits until stdout contains s.
func (p *proc) waitOutput(t testing.TB, s string, timeout time.Duration) {
	t.Helper()
	brokertest.Eventually(t, timeout, fmt.Sprintf("%s did not print %q", p.name, s), func() bool {
		if strings.Contains(p.stdout.String(), s) {
			return true
		}
		if p.exited() {
			t.Fatalf("%s exited (%s) before printing %q", p.name, p.state, s)
		}
		return false
	})
}

// run runs a short-lived binary to its end and returns its exit code,
// stdout and combined output.
func run(t testing.TB, timeout time.Duration, binary string, env []string, args ...string) (code int, stdout, out string) {
	t.Helper()
	p := start(t, binary+" "+strings.Join(args, " "), binary, env, args...)
	code = p.wait(t, timeout)
	return code, p.stdout.String(), p.out.String()
}

// service is a long-running binary with an HTTP address of its own.
type service struct {
	*proc
	binary string
	env    []string
	args   []string
	addr   string // host:port of its /readyz and /metrics
	scheme string // of addr: http, or https for a cashier serving TLS
	route  string // a barista's route level (CAFE_BARISTA_ROUTE)
}

// startService starts binary on a free local port, given to it as
// CAFE_HTTP_ADDR. waitReady waits for it to be ready.
func startService(t testing.TB, name, binary string, env []string, args ...string) *service {
	t.Helper()
	s := &service{binary: binary, env: env, args: args}
	s.launch(t, name)
	return s
}

func (s *service) launch(t testing.TB, name string) {
	s.addr = freeAddr(t)
	s.proc = start(t, name, s.binary, append(append([]string{}, s.env...), "CAFE_HTTP_ADDR="+s.addr, "CAFE_CONSOLE_ADDR=127.0.0.1:0"), s.args...)
}

// waitReady polls /readyz until it answers 200. A process that lost its
// port to another between freeAddr and its own listen is started again on
// another port (belonging to the same test as before).
func (s *service) waitReady(t testing.TB) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ready := false
		brokertest.Eventually(t, readyTimeout, s.name+" never answered /readyz with 200 at "+s.addr, func() bool {
			if s.exited() {
				return true
			}
			// The answer must come from this process: another may have
			// taken the port between freeAddr and this one's listen (its
			// health server then answers 200, and this one exits).
			ready = getURL(s.base()+"/readyz") == http.StatusOK && listensOn(s.cmd.Process.Pid, s.addr)
			return ready
		})
		if ready {
			return
		}
		if attempt < 3 && strings.Contains(s.out.String(), "address already in use") {
			t.Logf("%s lost its port %s to another process; starting it again", s.name, s.addr)
			s.launch(s.owner, s.name)
			continue
		}
		t.Fatalf("%s exited (%s) before it was ready", s.name, s.state)
	}
}

// probe is the HTTP client of the harness's own requests (readiness,
// metrics), short-timed and without keep-alive so it leaves nothing open;
// it trusts the local CA, for a cashier serving HTTPS.
var probe = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: localTLS()}}

// base is the service's base URL.
func (s *service) base() string { return cmp.Or(s.scheme, "http") + "://" + s.addr }

// get returns the status of GET http://addr/path, or 0 when it failed.
func get(addr, path string) int { return getURL("http://" + addr + path) }

// getURL returns the status of GET u, or 0 when it failed.
func getURL(u string) int {
	res, err := probe.Get(u)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode
}

// metric returns the value of one sample on the service's /metrics; series
// is its name with labels exactly as exposed, e.g.
// cafe_barista_commands_total{outcome="reply"}. A series that is not
// exposed fails the test.
func (s *service) metric(t testing.TB, series string) float64 {
	t.Helper()
	v, ok := s.sample(t, series)
	if !ok {
		t.Fatalf("%s exposes no %s", s.name, series)
	}
	return v
}

// counter is metric for a counter whose labelled series appears only once
// it was first incremented: absent counts as 0.
func (s *service) counter(t testing.TB, series string) float64 {
	t.Helper()
	v, _ := s.sample(t, series)
	return v
}

func (s *service) sample(t testing.TB, series string) (float64, bool) {
	t.Helper()
	res, err := probe.Get(s.base() + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", s.name, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: metric %s: %v", s.name, series, err)
			}
			return f, true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", s.name, err)
	}
	return 0, false
}

// listensOn reports whether process pid holds the listening TCP socket
// of addr (127.0.0.1:port): /proc/net/tcp names the socket's inode, and
// one of the process's file descriptors must be that socket.
func listensOn(pid int, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false
	}
	local := fmt.Sprintf("0100007F:%04X", n) // 127.0.0.1, as /proc/net/tcp writes it
	inode := ""
	for _, line := range strings.Split(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) > 9 && f[1] == local && f[3] == "0A" { // 0A: LISTEN
			inode = f[9]
		}
	}
	if inode == "" {
		return false
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && link == "socket:["+inode+"]" {
			return true
		}
	}
	return false
}

// freeAddr returns a local address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}
