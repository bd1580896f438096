// Package procstat reads what a process on this machine has cost from
// /proc: the CPU time in /proc/PID/stat. cafe bench reads it for every
// process it measures, and the ledger's benchmarks for PostgreSQL's
// backends; one parser for both.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// UserHZ is the unit of the CPU times in /proc/PID/stat: Linux's USER_HZ,
// 100 on every architecture Go runs on (the kernel converts its own tick
// rate to it for /proc).
const UserHZ = 100

// MaxStat bounds what is read of a /proc/PID file: a real stat line is a
// few hundred bytes.
const MaxStat = 4 << 10

// ParseStat returns the user + system CPU time of a /proc/PID/stat line
// (fields 14 and 15, counted after the parenthesised command name, which
// may itself hold spaces and parentheses).
func ParseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no ')' closing the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] { // utime, stime
		v, err := strconv.ParseUint(s, 10, 48)
		if err != nil {
			return 0, fmt.Errorf("CPU time %q: %w", s, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / UserHZ), nil
}

// CPU is the user + system CPU time process pid has used, read from
// root/PID/stat (root is /proc, or a copy of it in tests).
func CPU(root string, pid int) (time.Duration, error) {
	name := filepath.Join(root, strconv.Itoa(pid), "stat")
	f, err := os.Open(name)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w (did it exit?)", pid, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxStat))
	if err != nil {
		return 0, err
	}
	d, err := ParseStat(b)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}
