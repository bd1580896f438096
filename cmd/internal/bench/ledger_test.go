package bench

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"cafe/contracts/records"
)

const lagPage = `# HELP cafe_ledger_lag_seconds Time from an event happening to its being committed to PostgreSQL (the ledger's lag).
# TYPE cafe_ledger_lag_seconds histogram
cafe_ledger_lag_seconds_bucket{le="0.01"} %d
cafe_ledger_lag_seconds_bucket{le="0.05"} %d
cafe_ledger_lag_seconds_bucket{le="0.1"} %d
cafe_ledger_lag_seconds_bucket{le="+Inf"} %d
cafe_ledger_lag_seconds_sum 1.5
cafe_ledger_lag_seconds_count 100
process_cpu_seconds_total 3
`

func lagReading(t *testing.T, pages ...string) lagHistogram {
	t.Helper()
	byBound := map[float64]float64{}
	for _, p := range pages {
		ok, err := parseLag(strings.NewReader(p), byBound)
		if err != nil || !ok {
			t.Fatalf("parseLag: %v, %v", ok, err)
		}
	}
	return newLagHistogram(byBound)
}

func page(counts ...int) string {
	args := make([]any, len(counts))
	for i, c := range counts {
		args[i] = c
	}
	return fmt.Sprintf(lagPage, args...)
}

// The phase's lag is the difference of two readings, added over ledgers;
// its quantiles are bucket bounds, and one past the last bound says so.
func TestLedgerLagOfAPhase(t *testing.T) {
	before := lagReading(t, page(10, 10, 10, 10))
	after := lagReading(t, page(60, 100, 109, 110), page(0, 0, 0, 0)) // two ledgers, one idle
	d := after.since(before)
	if d.total() != 100 {
		t.Fatalf("total %v, want 100", d.total())
	}
	if q, beyond := d.quantile(0.5); q != 0.01 || beyond {
		t.Errorf("p50 %v %v, want ≤ 0.01", q, beyond)
	}
	if q, beyond := d.quantile(0.99); q != 0.1 || beyond {
		t.Errorf("p99 %v %v, want ≤ 0.1", q, beyond)
	}
	slow := lagReading(t, page(10, 10, 10, 110)).since(before)
	if q, beyond := slow.quantile(0.99); q != 0.1 || !beyond {
		t.Errorf("p99 past the last bound: %v %v, want 0.1 and beyond", q, beyond)
	}
	if q, _ := lagReading(t, page(0, 0, 0, 0)).quantile(0.99); q != 0 {
		t.Errorf("empty histogram's p99 %v, want 0", q)
	}
}

func TestLedgerLagUnreadable(t *testing.T) {
	if ok, err := parseLag(strings.NewReader(`cafe_ledger_lag_seconds_bucket{le="x"} 1`), map[float64]float64{}); err == nil {
		t.Errorf("a bad bound read as %v", ok)
	}
	if ok, err := parseLag(strings.NewReader("process_cpu_seconds_total 3\n"), map[float64]float64{}); ok || err != nil {
		t.Errorf("a page without a ledger: %v %v, want not found", ok, err)
	}
}

// Rows and bytes per command are the tables' growth over the commands.
func TestLedgerReportPerCommand(t *testing.T) {
	before := ledgerSample{hasLag: true, lag: lagReading(t, page(0, 0, 0, 0)), db: records.Footprint{Commands: 5, Bytes: 8192}}
	after := ledgerSample{hasLag: true, lag: lagReading(t, page(300, 400, 400, 400)), db: records.Footprint{Commands: 105, Bytes: 8192 + 100*1024}}
	r := ledgerReport(before, after, 100)
	if r.EventsPerCommand != 4 || r.RowsPerCommand != 1 || r.BytesPerCommand != 1024 || r.LagP99MS != 50 {
		t.Errorf("report %+v", r)
	}
	noDB := ledgerReport(ledgerSample{dbErr: errors.New("x")}, ledgerSample{dbErr: errors.New("x")}, 100)
	if noDB != nil {
		t.Errorf("neither a ledger nor a database: %+v, want no report", noDB)
	}
}
