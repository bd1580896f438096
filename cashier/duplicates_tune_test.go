package cashier_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"cafe/cashier"
)

// benchTuning is BenchmarkDuplicateCheck's cashier: a budget of 1 s, so
// that on a loaded machine no submission's check is skipped (what is
// measured is what a lookup costs PostgreSQL), and CAFE_BENCH_DUP_SLOTS
// queries in flight (default the cashier's own).
func benchTuning(b *testing.B, s *cashier.Server) {
	slots := 0
	if v := os.Getenv("CAFE_BENCH_DUP_SLOTS"); v != "" {
		var err error
		if slots, err = strconv.Atoi(v); err != nil || slots < 1 {
			b.Fatalf("CAFE_BENCH_DUP_SLOTS=%q: want a count", v)
		}
	}
	cashier.TuneDuplicates(s, slots, time.Second)
}
