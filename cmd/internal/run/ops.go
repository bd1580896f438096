package run

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts/ops"
)

// Ops is the small HTTP server of a barista or caller process: the routes
// of package ops (/healthz, /readyz, /metrics, /debug/pprof/ when enabled).
// It binds on creation, so with the default address ":0" any number of
// processes run side by side, each on a free port it logs.
type Ops struct {
	srv *http.Server
	ln  net.Listener
	log *slog.Logger
}

// NewOps binds addr. ready returns nil when the process is ready, or why not.
func NewOps(s OpsSettings, prom *prometheus.Registry, ready func() error, log *slog.Logger) (*Ops, error) {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (set %s to a free address, or :0 for any)", s.Addr, err, ops.SettingAddr)
	}
	h := ops.Handler(ops.Config{Metrics: prom, Ready: ready, Pprof: s.Pprof})
	return &Ops{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
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
