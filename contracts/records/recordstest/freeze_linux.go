//go:build linux

package recordstest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Freeze stops the server's processes (SIGSTOP: the postmaster and every
// backend) without ending them: a hung server. Connections stay open and
// new ones are accepted by the kernel, but nothing answers until Thaw.
func (s *Server) Freeze() {
	s.t.Helper()
	pm := s.postmaster()
	s.held = append(children(pm), pm)
	for _, pid := range s.held {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil && err != syscall.ESRCH { // a backend may have ended meanwhile
			s.t.Fatalf("SIGSTOP %d: %v", pid, err)
		}
	}
}

// Thaw resumes what Freeze stopped (SIGCONT); nothing if it froze nothing.
func (s *Server) Thaw() {
	s.t.Helper()
	for _, pid := range s.held {
		_ = syscall.Kill(pid, syscall.SIGCONT) // a backend may have gone
	}
	s.held = nil
}

// postmaster is the server's process id (postmaster.pid's first line).
func (s *Server) postmaster() int {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data, "postmaster.pid"))
	if err != nil {
		s.t.Fatalf("the server is not running: %v", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		s.t.Fatalf("postmaster.pid: %q", first)
	}
	return pid
}

// children are the processes whose parent is pid (from /proc).
func children(pid int) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ")".
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}
