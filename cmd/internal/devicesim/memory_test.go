package devicesim_test

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"

	"cafe/cmd/internal/devicesim"
)

// BenchmarkFleetMemory measures what one simulated device costs the
// simulator, online against the test broker: the Go heap and stacks in
// use, and the growth of the process's resident set, per device. The
// fleet has CAFE_SIM_BENCH_DEVICES devices (default 1000); run it once:
//
//	CAFE_SIM_BENCH_DEVICES=8000 go test -run '^$' -bench FleetMemory -benchtime 1x ./cmd/internal/devicesim/
//
// (Each device is a TCP connection: mind the open-file limit, ulimit -n.)
func BenchmarkFleetMemory(b *testing.B) {
	n := 1000
	if v := os.Getenv("CAFE_SIM_BENCH_DEVICES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("CAFE_SIM_BENCH_DEVICES=%q: want a number of devices", v)
		}
	}
	for range b.N {
		goBefore, rssBefore := memInUse(b)
		f := runFleet(b, devicesim.Config{Count: n})
		goAfter, rssAfter := memInUse(b)
		if online := f.Stats().Online; online != n {
			b.Fatalf("%d of %d devices online", online, n)
		}
		b.ReportMetric(float64(goAfter-goBefore)/float64(n), "go-bytes/device")
		b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-bytes/device")
		b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
		f.stop()
	}
}

// memInUse is the Go heap and stacks in use after a collection, and the
// process's resident set (VmRSS), in bytes.
func memInUse(b *testing.B) (goBytes, rss int64) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			rss = kb << 10
		}
	}
	return int64(m.HeapInuse + m.StackInuse), rss
}
