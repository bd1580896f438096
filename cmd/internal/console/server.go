package console

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"cafe/contracts/registry"
)

//go:embed web
var webFS embed.FS

// Sources are what the console shows; Registry is called on every request
// (it is the registry as last loaded: removals take effect at once).
type Sources struct {
	Registry func() *registry.Registry
	Devices  *Index
	Pipeline Pipeline
	Dead     DeadLetters
	States   []func() SourceState // other sources' states (MQTT), shown with the pipeline's
}

// Server is the console's HTTP server.
type Server struct {
	cfg      Config
	src      Sources
	log      *slog.Logger
	sessions *sessions
	pages    *template.Template
	echo     *echo.Echo
	ln       net.Listener
	tls      bool
}

// New builds the console and binds its listener.
func New(cfg Config, src Sources, log *slog.Logger) (*Server, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if src.Registry == nil || src.Devices == nil || src.Pipeline == nil || src.Dead == nil {
		return nil, errors.New("console: every source is needed (registry, devices, pipeline, dead letters)")
	}
	pages, err := template.New("").Funcs(template.FuncMap{"eq": func(a, b string) bool { return a == b }}).ParseFS(webFS, "web/*.html")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, src: src, log: log, sessions: newSessions(cfg.SessionTTL), pages: pages, tls: cfg.CertFile != ""}
	s.echo = s.routes()
	if s.ln, err = s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(securityHeaders)
	static, _ := fs.Sub(webFS, "web/static")
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServer(http.FS(static)))))
	e.GET("/login", s.loginPage)
	e.POST("/login", s.login)
	auth := e.Group("", s.requireSession)
	auth.POST("/logout", s.logout)
	auth.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/pipeline") })
	for _, name := range []string{"pipeline", "devices", "dead", "clients"} {
		auth.GET("/"+name, s.showPage(name))
	}
	auth.GET("/api/pipeline", s.apiPipeline)
	auth.GET("/api/devices", s.apiDevices)
	auth.GET("/api/clients", s.apiClients)
	auth.GET("/api/dead", s.apiDeadList)
	auth.GET("/api/dead/:id", s.apiDeadShow)
	auth.POST("/api/dead/replay", s.apiDeadReplay)
	auth.POST("/api/dead/purge", s.apiDeadPurge)
	auth.GET("/api/events", s.events)
	return e
}

// securityHeaders keep the pages from being framed or sniffed, and scripts
// to the console's own.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

func (s *Server) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %s (%s): %w", s.cfg.Addr, SettingAddr, err)
	}
	if !s.tls {
		return ln, nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.CertFile, s.cfg.KeyFile)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("console: %s / %s: %w", SettingCertFile, SettingKeyFile, err)
	}
	return tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}), nil
}

// Addr is where the console listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the console's base URL.
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.ln.Addr().String()
}

// Run serves until ctx is done, then closes within 5 s (event streams
// are cut).
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(s.ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shut)
	<-done
	return err
}

// view is the pipeline with every source's state.
func (s *Server) view(ctx context.Context) PipelineView {
	v := s.src.Pipeline.Pipeline(ctx)
	for _, st := range s.src.States {
		v.Sources = append(v.Sources, st())
	}
	return v
}

// registry is the registry as last loaded (never nil).
func (s *Server) registry() *registry.Registry {
	if r := s.src.Registry(); r != nil {
		return r
	}
	empty, _ := registry.Parse([]byte("clients: []\n"))
	return empty
}
