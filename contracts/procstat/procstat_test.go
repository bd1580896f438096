package procstat

import (
	"strings"
	"testing"
	"time"
)

// realStat is a /proc/PID/stat line of beam.smp: utime 1234, stime 566.
const realStat = "4242 (beam.smp) S 1 4242 4242 0 -1 4194560 123456 0 12 0 1234 566 0 0 20 0 90 0 1000 2345678 12345 18446744073709551615 1 1 0 0 0 0 0 4096 17663 0 0 0 17 1 0 0 0 0 0\n"

func TestParseProcStat(t *testing.T) {
	got, err := ParseStat([]byte(realStat))
	if err != nil || got != 18*time.Second {
		t.Fatalf("ParseStat = %v, %v; want 18s (1800 ticks at 100/s)", got, err)
	}
	// A command name may hold spaces and parentheses: the last ')' ends it.
	hostile := strings.Replace(realStat, "(beam.smp)", "(a) S 1 2 3 4 5 6 7 8 9 10 11 12 (x)", 1)
	if got, err := ParseStat([]byte(hostile)); err != nil || got != 18*time.Second {
		t.Fatalf("name with ') S 1 …' in it: %v, %v; want 18s", got, err)
	}
}

func TestParseProcStatMalformed(t *testing.T) {
	for name, in := range map[string]string{
		"empty":            "",
		"no parenthesis":   "4242 beam.smp S 1 2 3",
		"truncated":        "4242 (beam.smp) S 1 4242 4242 0 -1 4194560 123456 0 12 0",
		"negative utime":   strings.Replace(realStat, " 1234 566 ", " -1234 566 ", 1),
		"not a number":     strings.Replace(realStat, " 1234 566 ", " 12x4 566 ", 1),
		"huge stime":       strings.Replace(realStat, " 1234 566 ", " 1234 99999999999999999999 ", 1),
		"binary garbage":   "\x00\xff)\x00\x00",
		"only a paren":     ")",
		"name never ended": "4242 (beam.smp S 1 4242 4242 0 -1 4194560 123456 0 12 0 1234 566 0 0",
	} {
		if v, err := ParseStat([]byte(in)); err == nil {
			t.Errorf("%s: parsed as %v, want an error", name, v)
		}
	}
}
