package bench

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realStat is a /proc/PID/stat line of beam.smp: utime 1234, stime 566
// (procstat's tests parse it too).
const realStat = "4242 (beam.smp) S 1 4242 4242 0 -1 4194560 123456 0 12 0 1234 566 0 0 20 0 90 0 1000 2345678 12345 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0\n"

func TestParseProcIO(t *testing.T) {
	in := "rchar: 100\nwchar: 200\nsyscr: 30\nsyscw: 12\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n"
	if n, err := parseProcIO(strings.NewReader(in)); err != nil || n != 42 {
		t.Fatalf("parseProcIO = %d, %v; want 42", n, err)
	}
	for name, in := range map[string]string{
		"empty":     "",
		"no syscw":  "syscr: 30\n",
		"negative":  "syscr: -3\nsyscw: 1\n",
		"garbage":   "syscr: 3e4\nsyscw: 1\n",
		"too large": "syscr: 99999999999999999999999\nsyscw: 1\n",
		"endless":   "syscr: 1\n" + strings.Repeat("x", 1<<20), // one huge line: read no further than the limit
	} {
		if n, err := parseProcIO(strings.NewReader(in)); err == nil {
			t.Errorf("%s: parsed as %d, want an error", name, n)
		}
	}
}

const tcpHeading = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"

func TestListenInodes(t *testing.T) {
	table := tcpHeading +
		"   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   110        0 5672 1 0 100 0 0 10 0\n" + // LISTEN on 5672
		"   1: 0100007F:1628 0100007F:D431 01 00000000:00000000 00:00000000 00000000   110        0 999 1 0 20 4 30 10 -1\n" + // an established connection to it
		"   2: 00000000:075B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1883 1 0 100 0 0 10 0\n" + // LISTEN on 1883
		"   3: garbage\n" +
		"   4: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 0 0 77 1\n" + // bad port
		"   5: 0100007F:1628 00000000:0000 0A 0 0 0 0 0 notanumber 1\n" // bad inode
	got := map[uint64]bool{}
	if err := listenInodes(strings.NewReader(table), 5672, got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[5672] {
		t.Fatalf("listening inodes on 5672 = %v, want only 5672 (not the established connection's 999)", got)
	}
}

// fakeProc lays out a /proc with one process, pid 4242, holding the socket
// with inode 5672 that listens on port 5672.
func fakeProc(t *testing.T, stat, io string) procFS {
	t.Helper()
	root := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net/tcp", tcpHeading+"   0: 0100007F:1628 00000000:0000 0A 00000000:00000000 00:00000000 00000000   110        0 5672 1 0 100 0 0 10 0\n")
	write("4242/stat", stat)
	write("4242/comm", "beam.smp\n")
	if io != "" {
		write("4242/io", io)
	}
	write("77/comm", "other\n")
	for pid, links := range map[string][]string{"77": {"socket:[1]", "/dev/null", "socket:[garbage"}, "4242": {"pipe:[3]", "socket:[5672]"}} {
		if err := os.MkdirAll(filepath.Join(root, pid, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, l := range links {
			if err := os.Symlink(l, filepath.Join(root, pid, "fd", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	return procFS(root)
}

func TestBrokerProcFoundByPort(t *testing.T) {
	root := fakeProc(t, realStat, "syscr: 10\nsyscw: 5\n")
	p := root.brokerProc("RabbitMQ", "amqp://u:secret@127.0.0.1/", "5672")
	if p.err != nil || p.pid != 4242 || p.name != "RabbitMQ (beam.smp)" {
		t.Fatalf("brokerProc = %+v, want pid 4242 named RabbitMQ (beam.smp)", p)
	}
	r, err := p.read()
	if err != nil || r.seconds != 18 || !r.hasSys || r.syscalls != 15 {
		t.Fatalf("read = %+v, %v; want 18 s and 15 system calls", r, err)
	}
}

func TestBrokerProcNotFound(t *testing.T) {
	root := fakeProc(t, realStat, "")
	for url, want := range map[string]string{
		"tcp://u:hunter2@127.0.0.1:1883":   "nothing listens on port 1883",
		"tcp://u:hunter2@192.0.2.7:1883":   "is not on this machine",
		"amqp://u:hunter2@127.0.0.1:99999": "port",
	} {
		p := root.brokerProc("Mosquitto", url, "1883")
		if p.err == nil || !strings.Contains(p.err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", url, p.err, want)
		}
		if p.err != nil && strings.Contains(p.err.Error(), "hunter2") {
			t.Errorf("%s: the error shows the password: %v", url, p.err)
		}
	}
}

func TestProcCPUMalformedOrGone(t *testing.T) {
	root := fakeProc(t, "4242 (beam.smp) S 1 2", "syscr: x\n")
	if _, err := root.cpu(4242); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("truncated stat: error %v, want one about its fields", err)
	}
	if _, err := root.cpu(999999); err == nil || !strings.Contains(err.Error(), "did it exit") {
		t.Errorf("no such process: error %v, want one asking whether it exited", err)
	}
	root = fakeProc(t, realStat, "syscr: x\n")
	if r, err := root.cpu(4242); err != nil || r.hasSys {
		t.Errorf("unreadable io: %+v, %v; want the CPU without system calls", r, err)
	}
}

// TestListenerPIDOfThisProcess reads the real /proc: the bench finds
// itself listening.
func TestListenerPIDOfThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system: CPU per command is measured only on Linux")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	pid, err := procFS("/proc").listenerPID(port)
	if err != nil || pid != os.Getpid() {
		t.Fatalf("listenerPID(%d) = %d, %v; want this process, %d", port, pid, err, os.Getpid())
	}
	r, err := procFS("/proc").cpu(pid)
	if err != nil || r.seconds < 0 || (r.hasSys && r.syscalls == 0) {
		t.Fatalf("cpu = %+v, %v; want this test's CPU and system calls", r, err)
	}
}

// A process tree (PostgreSQL's postmaster and its backends) is read as
// one: its CPU and system calls summed; other processes are left out.
func TestTreeCPU(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, ppid int, utime int) {
		dir := filepath.Join(root, fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := fmt.Sprintf("%d (postgres) S %d 1 1 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 0 0 0\n", pid, ppid, utime)
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "io"), []byte("syscr: 1\nsyscw: 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc(10, 1, 100) // the postmaster
	proc(11, 10, 200)
	proc(12, 10, 300)
	proc(13, 1, 5000) // not its child
	r, err := procFS(root).treeCPU(10)
	if err != nil || r.seconds != 6 || r.syscalls != 6 || !r.hasSys {
		t.Fatalf("treeCPU = %+v, %v; want 6 s and 6 system calls", r, err)
	}
}
