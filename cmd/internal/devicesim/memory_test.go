package devicesim_test

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"

	"cafe/cmd/internal/devicesim"
)

// BenchmarkFleetMemory measures what one simulated device costs the
// simulator, online against the test broker: the growth of the process's
// resident set once the fleet is online (rss-bytes/device, as the process
// sees it, garbage not yet collected included), and after a collection the
// Go heap and stacks in use (go-bytes/device) and the stacks alone, per
// device. The
// fleet has CAFE_SIM_BENCH_DEVICES devices (default 1000); run it once:
//
//	CAFE_SIM_BENCH_DEVICES=8000 go test -run '^$' -bench FleetMemory -benchtime 1x ./cmd/internal/devicesim/
//
// CAFE_SIM_BENCH_PROFILE=heap.out also writes the fleet's heap profile
// (go tool pprof -sample_index=inuse_space heap.out).
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
		goBefore, stackBefore, rssBefore := memInUse(b)
		f := runFleet(b, devicesim.Config{Count: n})
		rssOnline := rssNow(b) // as a process sees it: no collection forced
		goAfter, stackAfter, _ := memInUse(b)
		if online := f.Stats().Online; online != n {
			b.Fatalf("%d of %d devices online", online, n)
		}
		b.ReportMetric(float64(goAfter-goBefore)/float64(n), "go-bytes/device")
		b.ReportMetric(float64(stackAfter-stackBefore)/float64(n), "stack-bytes/device")
		b.ReportMetric(float64(rssOnline-rssBefore)/float64(n), "rss-bytes/device")
		b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
		if os.Getenv("CAFE_SIM_BENCH_PROFILE") != "" {
			writeHeapProfile(b, os.Getenv("CAFE_SIM_BENCH_PROFILE"))
		}
		f.stop()
	}
}

// writeHeapProfile writes the heap profile of the online fleet to name.
func writeHeapProfile(b *testing.B, name string) {
	b.Helper()
	out, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()
	if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
		b.Fatal(err)
	}
}

// memInUse is the Go heap and stacks in use after a collection, the
// stacks alone, and the process's resident set then (VmRSS), in bytes.
func memInUse(b *testing.B) (goBytes, stacks, rss int64) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse), int64(m.StackInuse), rssNow(b)
}

// rssNow is the process's resident set (VmRSS) in bytes.
func rssNow(b *testing.B) (rss int64) {
	b.Helper()
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
	return rss
}
