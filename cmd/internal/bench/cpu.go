package bench

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"cafe/contracts/amqplink"
)

// ProcessCPU is the CPU one process used in a phase, per command completed
// in it.
type ProcessCPU struct {
	Name         string  `json:"name"`
	PID          int     `json:"pid,omitempty"`
	Cafe         bool    `json:"cafe"`   // one of cafe's services (--scrape)
	Source       string  `json:"source"` // /proc/PID, or the /metrics URL when the process is not on this machine
	CPUMS        float64 `json:"cpu_ms"`
	MSPerCommand float64 `json:"cpu_ms_per_command"`
	// SyscallsPerCommand counts the read- and write-family system calls
	// (/proc/PID/io syscr + syscw); absent when that file is unreadable.
	SyscallsPerCommand float64 `json:"rw_syscalls_per_command,omitempty"`
	// AllocsPerCommand is the Go heap allocations per command of a cafe
	// service (go_memstats_mallocs_total of its /metrics).
	AllocsPerCommand float64 `json:"allocs_per_command,omitempty"`
	Error            string  `json:"error,omitempty"` // the process could not be found or read; the others are still reported
}

// cpuReading is one process's counters at one moment.
type cpuReading struct {
	seconds    float64
	syscalls   uint64
	hasSys     bool
	mallocs    float64
	hasMallocs bool
}

// cpuProc is one process the meter reads: by pid from /proc, or over HTTP
// from its /metrics (process_cpu_seconds_total) when it is not local.
type cpuProc struct {
	name, source string
	pid          int
	cafe         bool
	err          error // why it cannot be read at all
	read         func() (cpuReading, error)
}

// cpuMeter reads the CPU of cafe's services (the --scrape targets), of the
// brokers (the processes listening on the AMQP and MQTT URLs' ports) and of
// the bench itself, at the start and the end of each phase.
type cpuMeter struct{ procs []*cpuProc }

func newCPUMeter(cfg Config, root procFS) *cpuMeter {
	m := &cpuMeter{}
	client := &http.Client{}
	for _, spec := range cfg.Scrape {
		name, u, _ := parseScrape(spec) // validated with the config
		m.procs = append(m.procs, root.serviceProc(name, u, client))
	}
	m.procs = append(m.procs,
		root.brokerProc("RabbitMQ", amqplink.FirstURL(cfg.AMQPURL), "5672"),
		root.brokerProc("Mosquitto", cfg.MQTTURL, "1883"))
	if cfg.PostgresURL != "" {
		m.procs = append(m.procs, root.postgresProc(cfg.PostgresURL))
	}
	m.procs = append(m.procs, root.pidProc("load generator (cafe bench)", os.Getpid()))
	return m
}

// postgresProc is the PostgreSQL server behind rawURL (the ledger's
// database): the process listening on its port and its children, the
// backends.
func (root procFS) postgresProc(rawURL string) *cpuProc {
	p := root.brokerProc("PostgreSQL", rawURL, "5432")
	if p.err == nil {
		pid := p.pid
		p.name = "PostgreSQL (" + root.comm(pid) + " and its backends)"
		p.read = func() (cpuReading, error) { return root.treeCPU(pid) }
	}
	return p
}

func (root procFS) pidProc(name string, pid int) *cpuProc {
	return &cpuProc{name: name, pid: pid, source: fmt.Sprintf("%s/%d", root, pid), read: func() (cpuReading, error) { return root.cpu(pid) }}
}

// localPort is the port of rawURL when its host is this machine, else an
// error saying why its process cannot be read here.
func localPort(rawURL, defaultPort string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", err
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPort
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) && !isLocalAddr(ip) {
		return "", fmt.Errorf("%s is not on this machine", u.Host)
	}
	return port, nil
}

func isLocalAddr(ip net.IP) bool {
	if ip == nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return ip.IsUnspecified()
}

// findListener is the pid listening on rawURL's port on this machine.
func (root procFS) findListener(rawURL, defaultPort string) (int, error) {
	port, err := localPort(rawURL, defaultPort)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0, fmt.Errorf("port %q: %w", port, err)
	}
	return root.listenerPID(n)
}

// brokerProc finds the broker behind rawURL by its listening port; its
// name says which program it is (beam.smp for RabbitMQ).
func (root procFS) brokerProc(name, rawURL, defaultPort string) *cpuProc {
	pid, err := root.findListener(rawURL, defaultPort)
	if err != nil {
		return &cpuProc{name: name, err: fmt.Errorf("%s (%s): %w", name, redactURL(rawURL), err)}
	}
	return root.pidProc(name+" ("+root.comm(pid)+")", pid)
}

// serviceProc reads a cafe service from /proc when it runs here (found by
// its metrics port), which also gives its system calls; else from its
// /metrics.
func (root procFS) serviceProc(name, metricsURL string, c *http.Client) *cpuProc {
	if pid, err := root.findListener(metricsURL, "80"); err == nil {
		p := root.pidProc(name, pid)
		p.cafe = true
		p.read = func() (cpuReading, error) {
			r, err := root.cpu(pid)
			if m, merr := fetchMetrics(c, metricsURL); merr == nil { // allocations: only the service knows them
				r.mallocs, r.hasMallocs = m.mallocs, m.hasMallocs
			}
			return r, err
		}
		return p
	}
	return &cpuProc{name: name, cafe: true, source: metricsURL, read: func() (cpuReading, error) {
		m, err := fetchMetrics(c, metricsURL)
		if err == nil && !m.hasCPU {
			err = errors.New("no process_cpu_seconds_total in " + metricsURL)
		}
		return cpuReading{seconds: m.cpu, mallocs: m.mallocs, hasMallocs: m.hasMallocs}, err
	}}
}

// redactURL drops a URL's password, for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the URL"
	}
	return u.Redacted()
}

// cpuSample is every process's reading at one moment.
type cpuSample struct {
	r   []cpuReading
	err []error
}

func (m *cpuMeter) sample() cpuSample {
	if m == nil {
		return cpuSample{}
	}
	s := cpuSample{r: make([]cpuReading, len(m.procs)), err: make([]error, len(m.procs))}
	for i, p := range m.procs {
		if p.err != nil {
			s.err[i] = p.err
			continue
		}
		s.r[i], s.err[i] = p.read()
	}
	return s
}

// perCommand is each process's CPU between two samples, over commands.
func (m *cpuMeter) perCommand(before, after cpuSample, commands int) []ProcessCPU {
	if m == nil {
		return nil
	}
	out := make([]ProcessCPU, len(m.procs))
	for i, p := range m.procs {
		pc := ProcessCPU{Name: p.name, PID: p.pid, Cafe: p.cafe, Source: p.source}
		switch err := cmp.Or(before.err[i], after.err[i]); {
		case err != nil:
			pc.Error = err.Error()
		case commands <= 0:
			pc.Error = "no command completed in the phase"
		default:
			b, a := before.r[i], after.r[i]
			pc.CPUMS = (a.seconds - b.seconds) * 1000
			pc.MSPerCommand = pc.CPUMS / float64(commands)
			if a.hasSys && b.hasSys {
				pc.SyscallsPerCommand = float64(a.syscalls-b.syscalls) / float64(commands)
			}
			if a.hasMallocs && b.hasMallocs {
				pc.AllocsPerCommand = (a.mallocs - b.mallocs) / float64(commands)
			}
		}
		out[i] = pc
	}
	return out
}

// completed is how many commands the phase finished, warmup included: their
// results, or their 202s when cashier-only.
func (p *phase) completed() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spec.CashierOnly {
		return p.all.Accepted
	}
	return p.all.Results
}
