package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"cafe/contracts/procstat"
)

// parseProcIO returns syscr + syscw of /proc/PID/io: the read- and
// write-family system calls (read, write, readv, writev, pread, ...) of
// every thread. Not counted there: epoll, futex, sendmsg/recvmsg, nanosleep.
func parseProcIO(r io.Reader) (uint64, error) {
	var n uint64
	seen := 0
	sc := bufio.NewScanner(io.LimitReader(r, procstat.MaxStat))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		c, err := strconv.ParseUint(strings.TrimSpace(v), 10, 62)
		if err != nil {
			return 0, fmt.Errorf("%s %q: %w", k, strings.TrimSpace(v), err)
		}
		n += c
		seen++
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if seen != 2 {
		return 0, errors.New("no syscr and syscw lines")
	}
	return n, nil
}

// listenInodes returns the socket inodes of the LISTEN sockets on port in
// a /proc/net/tcp or tcp6 table.
func listenInodes(r io.Reader, port int, into map[uint64]bool) error {
	sc := bufio.NewScanner(r)
	sc.Scan() // the heading
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil || int(p) != port {
			continue
		}
		if ino, err := strconv.ParseUint(f[9], 10, 64); err == nil && ino != 0 {
			into[ino] = true
		}
	}
	return sc.Err()
}

// procFS is where the process table is read: /proc, or a directory laid
// out like it in tests.
type procFS string

// listenerPID finds the process that listens on TCP port (any address):
// the socket's inode in net/tcp and net/tcp6, then the process holding a
// descriptor to it.
func (root procFS) listenerPID(port int) (int, error) {
	inodes := map[uint64]bool{}
	for _, t := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(string(root), t))
		if err != nil {
			continue // no IPv6, say
		}
		err = listenInodes(f, port, inodes)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d on this machine (a broker on another host cannot be measured from here)", port)
	}
	if pid := root.socketOwner(inodes); pid > 0 {
		return pid, nil
	}
	return 0, fmt.Errorf("port %d is open but no process shows its socket in %s/*/fd (run the bench as that process's user, or as root)", port, root)
}

// socketOwner is the first process with a descriptor on one of inodes, or 0.
func (root procFS) socketOwner(inodes map[uint64]bool) int {
	dirs, _ := os.ReadDir(string(root))
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(string(root), d.Name(), "fd")
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			link, _ := os.Readlink(filepath.Join(fdDir, fd.Name()))
			s, ok := strings.CutPrefix(link, "socket:[")
			if !ok || !strings.HasSuffix(s, "]") {
				continue
			}
			if ino, err := strconv.ParseUint(s[:len(s)-1], 10, 64); err == nil && inodes[ino] {
				return pid
			}
		}
	}
	return 0
}

// comm is a process's command name, or "" when it cannot be read.
func (root procFS) comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join(string(root), strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// cpu reads a process's CPU seconds, and its read/write system calls when
// /proc/PID/io is readable (hasSys).
func (root procFS) cpu(pid int) (r cpuReading, err error) {
	d, err := procstat.CPU(string(root), pid)
	if err != nil {
		return r, err
	}
	r.seconds = d.Seconds()
	if io, err := os.Open(filepath.Join(string(root), strconv.Itoa(pid), "io")); err == nil {
		r.syscalls, err = parseProcIO(io)
		r.hasSys = err == nil
		io.Close()
	}
	return r, nil
}

// children lists the pids whose parent is pid (from /proc/*/stat).
func (root procFS) children(pid int) []int {
	dirs, _ := os.ReadDir(string(root))
	var out []int
	for _, d := range dirs {
		child, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(string(root), d.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i >= 0 {
			if f := strings.Fields(string(b[i+1:])); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				out = append(out, child)
			}
		}
	}
	return out
}

// treeCPU reads a process and its children as one (PostgreSQL: the
// postmaster and a backend per connection), their system calls summed
// when every one is readable. A child that exited in between is missing
// from the later reading, so its CPU is not counted.
func (root procFS) treeCPU(pid int) (cpuReading, error) {
	r, err := root.cpu(pid)
	if err != nil {
		return r, err
	}
	for _, c := range root.children(pid) {
		cr, err := root.cpu(c)
		if err != nil {
			continue // gone since it was listed
		}
		r.seconds += cr.seconds
		r.syscalls += cr.syscalls
		r.hasSys = r.hasSys && cr.hasSys
	}
	return r, nil
}
