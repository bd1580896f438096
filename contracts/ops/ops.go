// Package ops serves what operators and orchestrators ask of every cafe
// service over HTTP, the same way everywhere:
//
//	GET /healthz        200 {"ok":true} while the process is alive
//	GET /readyz         200 {"ready":true}, or 503 {"ready":false,"reason":"..."}
//	GET /metrics        Prometheus text format
//	GET /debug/pprof/   profiles, only when enabled
//
// The cashier mounts these routes on its API server; baristas and callers
// serve them on a small server of their own (cmd/internal/run).
// /debug/pprof/cmdline is replaced by a version that hides secrets: broker
// URLs lose their passwords, and the values of flags whose name says
// password, secret, token or key are blanked.
package ops

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cafe/contracts"
)

// The settings every service has for these routes: where they listen (the
// cashier's API address; a worker's own small server) and whether profiles
// are served.
var (
	SettingAddr  = contracts.Setting{Flag: "http-addr", Env: "CAFE_HTTP_ADDR"}
	SettingPprof = contracts.Setting{Flag: "pprof", Env: "CAFE_PPROF"}
)

// Config says what to serve.
type Config struct {
	Metrics *prometheus.Registry
	// Ready returns nil when the service can do its work, or why not.
	Ready func() error
	Pprof bool // serve /debug/pprof/
}

// Handler serves the ops routes of cfg.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := cfg.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ready": true})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{Registry: cfg.Metrics}))
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Paths are the paths Handler serves (the cashier routes them to it).
var Paths = []string{"/healthz", "/readyz", "/metrics", "/debug/pprof/*"}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// cmdline is pprof's /debug/pprof/cmdline with secrets hidden.
func cmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(RedactArgs(os.Args), "\x00")))
}

// RedactArgs returns args with secrets hidden: the password of any URL,
// and the value of any flag whose name contains password, secret, token or
// key (--name=value or --name value).
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	hideNext := false
	for i, a := range args {
		switch {
		case hideNext:
			out[i], hideNext = "xxxxx", false
		case strings.HasPrefix(a, "-"):
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch {
			case !secretName(name):
				out[i] = redactValue(a)
			case hasValue:
				out[i] = a[:len(a)-len(value)] + "xxxxx"
			default:
				out[i], hideNext = a, true
			}
		default:
			out[i] = redactValue(a)
		}
	}
	return out
}

func secretName(name string) bool {
	name = strings.ToLower(name)
	for _, s := range []string{"password", "secret", "token", "key"} {
		if strings.Contains(name, s) {
			return true
		}
	}
	return false
}

// redactValue hides the password of a URL inside an argument (whole, or
// after a flag's "=").
func redactValue(a string) string {
	prefix, v := "", a
	if name, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "-") {
		prefix, v = name+"=", value
	}
	if strings.Contains(v, "://") && strings.Contains(v, "@") {
		return prefix + contracts.RedactURL(v)
	}
	return a
}
