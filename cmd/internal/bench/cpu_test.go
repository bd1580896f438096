package bench

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestPerCommand(t *testing.T) {
	m := &cpuMeter{procs: []*cpuProc{{name: "cashier", cafe: true, pid: 1}, {name: "RabbitMQ (beam.smp)", pid: 2}, {name: "Mosquitto"}}}
	gone := errors.New("process 3: gone")
	before := cpuSample{r: []cpuReading{{seconds: 1, syscalls: 100, hasSys: true, mallocs: 1e6, hasMallocs: true}, {seconds: 10}, {}}, err: []error{nil, nil, gone}}
	after := cpuSample{r: []cpuReading{{seconds: 1.5, syscalls: 600, hasSys: true, mallocs: 1.03e6, hasMallocs: true}, {seconds: 12}, {}}, err: []error{nil, nil, gone}}
	got := m.perCommand(before, after, 1000)
	if c := got[0]; c.CPUMS != 500 || c.MSPerCommand != 0.5 || c.SyscallsPerCommand != 0.5 || c.AllocsPerCommand != 30 || !c.Cafe {
		t.Errorf("cashier: %+v, want 500 ms, 0.5 ms, 0.5 system calls and 30 allocations per command", c)
	}
	if c := got[1]; c.MSPerCommand != 2 || c.SyscallsPerCommand != 0 || c.Cafe {
		t.Errorf("RabbitMQ: %+v, want 2 ms per command, no system calls", c)
	}
	if c := got[2]; c.Error != gone.Error() {
		t.Errorf("Mosquitto: %+v, want the error %q once, the others still reported", c, gone)
	}
	for _, c := range m.perCommand(before, after, 0) {
		if c.Error == "" {
			t.Errorf("%s: no commands completed, yet no error: %+v", c.Name, c)
		}
	}
	var nilMeter *cpuMeter
	if s := nilMeter.sample(); nilMeter.perCommand(s, s, 10) != nil {
		t.Error("a nil meter reported something")
	}
}

func metricsServer(t *testing.T, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, body) }))
	t.Cleanup(srv.Close)
	return srv
}

// TestServiceProcLocal: a service on this machine is read from /proc, found
// by its metrics port (here this test's own server).
func TestServiceProcLocal(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	srv := metricsServer(t, "go_memstats_mallocs_total 77\n")
	p := procFS("/proc").serviceProc("cashier", srv.URL+"/metrics", srv.Client())
	if p.pid != os.Getpid() || !p.cafe || p.err != nil {
		t.Fatalf("serviceProc = %+v, want this process (%d)", p, os.Getpid())
	}
	if r, err := p.read(); err != nil || r.seconds < 0 || !r.hasMallocs || r.mallocs != 77 {
		t.Fatalf("read = %+v, %v; want its CPU from /proc and its allocations from /metrics", r, err)
	}
}

// TestServiceProcOverHTTP: a service whose process is not visible is read
// from its process_cpu_seconds_total.
func TestServiceProcOverHTTP(t *testing.T) {
	srv := metricsServer(t, "process_cpu_seconds_total 12.5\ngo_memstats_mallocs_total 4.2e+06\n")
	p := procFS(t.TempDir()).serviceProc("barista", srv.URL+"/metrics", srv.Client())
	r, err := p.read()
	if p.pid != 0 || err != nil || r.seconds != 12.5 || r.hasSys || !r.hasMallocs || r.mallocs != 4.2e6 {
		t.Fatalf("serviceProc over HTTP = %+v read %+v, %v; want 12.5 s, 4.2e6 allocations, no system calls", p, r, err)
	}
	bad := metricsServer(t, "process_resident_memory_bytes 1e6\n")
	p = procFS(t.TempDir()).serviceProc("caller", bad.URL+"/metrics", bad.Client())
	if _, err := p.read(); err == nil || !strings.Contains(err.Error(), "process_cpu_seconds_total") {
		t.Fatalf("metrics without CPU: error %v, want one naming process_cpu_seconds_total", err)
	}
}
