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
