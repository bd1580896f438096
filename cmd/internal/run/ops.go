package run

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/cmd/internal/cli"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Ops is the small HTTP server of a barista or caller: /healthz, /readyz,
// /metrics, and /debug/pprof/ when enabled. It binds on creation, so with
// the default address ":0" any number of processes run side by side, each
// on a free port it logs.
type Ops struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// NewOps binds addr. ready returns nil when the service is ready, or why not.
func NewOps(addr string, prom *prometheus.Registry, ready func() error, withPprof bool, log *slog.Logger) (*Ops, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(prom, promhttp.HandlerOpts{Registry: prom}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set CAFE_HTTP_ADDR to a free address, or :0 for any)", addr, err)
	}
	return &Ops{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		ln:  ln,
		log: log,
	}, nil
}

// Addr is where the server listens.
func (o *Ops) Addr() net.Addr { return o.ln.Addr() }

// Run serves until ctx is done.
func (o *Ops) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- o.srv.Serve(o.ln) }()
	o.log.Info("health and metrics listening", "addr", o.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = o.srv.Shutdown(sctx)
	<-errc
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// OpsSettings are the flags of a worker's ops server.
type OpsSettings struct {
	Addr  string
	Pprof bool
}

// Register adds --http-addr and --pprof.
func (s *OpsSettings) Register(f cli.Flags) {
	f.String(&s.Addr, "http-addr", "CAFE_HTTP_ADDR", ":0", "address of /healthz, /readyz and /metrics (:0 picks a free port)")
	f.Bool(&s.Pprof, "pprof", "CAFE_PPROF", false, "serve /debug/pprof/ (profiles)")
}

// Worker is a barista or caller service.
type Worker interface {
	Run(ctx context.Context) error
	Ready() error
}

// RunWorker serves w's health and metrics and runs w until SIGINT or
// SIGTERM; the ops server stays up until w has finished shutting down.
func RunWorker(s OpsSettings, prom *prometheus.Registry, w Worker, log *slog.Logger) error {
	ops, err := NewOps(s.Addr, prom, w.Ready, s.Pprof, log)
	if err != nil {
		return err
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	opsCtx, stopOps := context.WithCancel(context.Background())
	opsDone := make(chan struct{})
	go func() { _ = ops.Run(opsCtx); close(opsDone) }()
	err = w.Run(ctx)
	stopOps()
	<-opsDone
	return err
}
