package brokertest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A scratch Mosquitto: a broker of the test's own on a spare port, with
// cafe's settings (deploy/mosquitto/cafe.conf) but none of its access
// control, stopped when the test ends. For measuring what authentication
// costs against the same broker without it; never for cafe's own tests,
// which run on the shared, locked-down broker.

// scratchDropped are the settings of cafe.conf a scratch broker does not
// take: its listeners, its logins and ACLs, and what it writes to disk.
var scratchDropped = []string{"listener", "cafile", "certfile", "keyfile", "tls_version", "allow_anonymous",
	"plugin", "plugin_opt_config_file", "acl_file", "persistence", "persistence_location", "persistence_file",
	"autosave_interval", "pid_file", "log_dest", "log_type", "log_timestamp", "log_timestamp_format"}

// AnonymousMosquitto starts Mosquitto with cafe.conf's settings (read
// from confFile) on a spare loopback port, open to anonymous clients with
// no ACL, and returns its URL. The test is skipped, saying why, when no
// mosquitto binary is installed.
func AnonymousMosquitto(t testing.TB, confFile string) string {
	t.Helper()
	return ScratchMosquitto(t, confFile, "allow_anonymous true\n")
}

// ScratchMosquitto is AnonymousMosquitto with access settings of the
// caller's own (access: allow_anonymous, plugin, acl_file lines), their
// files in dir: started as root, Mosquitto runs as the user mosquitto,
// so dir is given to that user.
func ScratchMosquitto(t testing.TB, confFile, access string) string {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("no mosquitto binary to run a scratch broker (apt-get install mosquitto):", err)
	}
	kept, err := keptSettings(confFile)
	if err != nil {
		t.Fatal(err)
	}
	addr := SpareAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(t.TempDir(), "scratch.conf")
	body := fmt.Sprintf("listener %s 127.0.0.1\n%spersistence false\nlog_dest stderr\nlog_type error\n%s", port, access, kept)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a scratch mosquitto: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	Eventually(t, 5*time.Second, "the scratch mosquitto never listened on "+addr+": "+out.String(), func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "tcp://" + addr
}

// keptSettings are the lines of confFile a scratch broker keeps.
func keptSettings(confFile string) (string, error) {
	f, err := os.Open(confFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, _, _ := strings.Cut(line, " ")
		if line == "" || strings.HasPrefix(line, "#") || slices.Contains(scratchDropped, name) {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String(), sc.Err()
}

// ScratchDir is a folder for a scratch broker's files, readable by the
// user Mosquitto runs as.
func ScratchDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cafe-scratch-") // not below t.TempDir: its root is the tests' user's alone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() != 0 {
		return dir
	}
	u, err := user.Lookup("mosquitto")
	if err != nil {
		return dir
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Own gives name to the owner of its folder (see ScratchDir).
func Own(t testing.TB, name string) {
	t.Helper()
	fi, err := os.Stat(filepath.Dir(name))
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		if err := os.Chown(name, int(st.Uid), int(st.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// SpareAddr is a loopback address (host:port) whose port was free a moment ago.
func SpareAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
