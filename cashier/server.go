package cashier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"cafe/contracts"
	"cafe/contracts/ops"
	"cafe/contracts/registry"
)

// Server is the cashier: an HTTP server that validates commands and queues
// them. It never waits for a device.
type Server struct {
	cfg Config
	log *slog.Logger
	q   Queue
	top contracts.Topology
	m   *metrics

	records  Records                 // the ledger's database; nil: the records API answers 503
	dups     *dupLookups             // the duplicate check's queries to records (duplicates.go)
	notices  Poster                  // status notices; nil: none
	refusals *contracts.EventBatcher // refused events for the ledger; nil: none

	dir         atomic.Pointer[directory]
	draining    atomic.Bool
	warnRefused rate.Sometimes // refusals are logged at warn level at most once a second
	warnAuth    rate.Sometimes // so are 401 and 403

	echo   *echo.Echo
	ln     net.Listener
	scheme string // http or https
}

// New builds the cashier and binds its listener (so a port clash or an
// unusable certificate fails here, and Addr is known before Run).
func New(cfg Config, reg *registry.Registry, q Queue, top contracts.Topology, prom *prometheus.Registry, log *slog.Logger) (*Server, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, errors.New("cashier needs a registry")
	}
	m, err := newMetrics(prom)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, q: q, top: top, m: m, warnRefused: rate.Sometimes{Interval: time.Second}, warnAuth: rate.Sometimes{Interval: time.Second}}
	s.dir.Store(newDirectory(reg, cfg, nil))

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.guardBody, s.recoverer)
	e.POST("/v1/devices/:deviceID/commands", s.submit)
	e.POST("/v1/sessions", s.session)
	e.GET("/v1/commands/:id", s.command)
	e.GET("/v1/results", s.results)
	opsRoutes := echo.WrapHandler(ops.Handler(ops.Config{Metrics: prom, Ready: s.ready, Pprof: cfg.Pprof}))
	for _, p := range ops.Paths {
		if p != "/debug/pprof/*" || cfg.Pprof {
			e.GET(p, opsRoutes)
		}
	}
	s.echo = e

	if s.ln, s.scheme, err = listen(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Scheme is "https" when the server has a certificate, "http" otherwise.
func (s *Server) Scheme() string { return s.scheme }

// Handler is the HTTP handler, for tests and benchmarks.
func (s *Server) Handler() http.Handler { return s.echo }

// SetRegistry swaps the registry (on SIGHUP); requests in flight finish
// with the one they started with.
func (s *Server) SetRegistry(r *registry.Registry) { s.dir.Store(newDirectory(r, s.cfg, s.dir.Load())) }

// Run serves until ctx is done, then shuts down gracefully: /readyz starts
// failing at once, the listener stays open for DrainDelay (so a load
// balancer notices), then closes, and requests in flight get ShutdownGrace
// to finish (their publishes are confirmed or refused, never dropped).
func (s *Server) Run(ctx context.Context) error {
	const headerTimeout = 5 * time.Second
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: headerTimeout, // also bounds a TLS handshake
		// guardBody gives each body BodyTimeout from its headers; this
		// is the backstop of the whole request.
		ReadTimeout:    headerTimeout + s.cfg.BodyTimeout,
		WriteTimeout:   s.cfg.BodyTimeout + s.cfg.ConfirmTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ConnState:      s.m.countConns,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.Info("cashier listening", "addr", s.Addr().String(), "scheme", s.scheme, "max_conns", s.cfg.MaxConns)

	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("cashier draining: /readyz fails, finishing requests in flight", "drain_delay", s.cfg.DrainDelay)
	if s.cfg.DrainDelay > 0 {
		time.Sleep(s.cfg.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("requests still in flight after %v: %w", s.cfg.ShutdownGrace, err)
	}
	<-errc
	s.refusals.Flush() // the last refusals, before the caller closes the links
	return nil
}

// ready says why the cashier cannot take commands, or nil.
func (s *Server) ready() error {
	switch {
	case s.draining.Load():
		return errors.New("shutting down")
	case !s.q.Ready():
		return errors.New("no confirmed-publish channel to RabbitMQ")
	}
	return nil
}

// errorHandler answers routing errors (404, 405) and anything a handler
// returned as an error with a JSON-RPC error body like every other answer.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, reason := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		status = he.Code
		reason = fmt.Sprint(he.Message)
	}
	code := contracts.CodeInternal
	switch status {
	case http.StatusNotFound:
		code, reason = contracts.CodeInvalidRequest, "no such endpoint; commands go to POST /v1/devices/{deviceID}/commands"
	case http.StatusMethodNotAllowed:
		code, reason = contracts.CodeInvalidRequest, "method not allowed; commands are submitted with POST"
	default:
		s.log.Error("request failed", "path", c.Path(), "err", err)
	}
	_ = s.fail(c, status, contracts.NewError(code, contracts.Detail{Reason: reason}))
}

// recoverer turns a panic in a handler into a 500 with a JSON-RPC error; the
// process keeps serving.
func (s *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic in handler", "path", c.Path(), "panic", r)
				err = s.fail(c, http.StatusInternalServerError, contracts.NewError(contracts.CodeInternal, nil))
			}
		}()
		return next(c)
	}
}
