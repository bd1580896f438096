package run

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"cafe/barista"
	"cafe/caller"
	"cafe/cashier"
	"cafe/cmd/internal/cli"
	"cafe/contracts"
)

// CashierSettings are the cashier's flags (the HTTP address is CAFE_HTTP_ADDR).
type CashierSettings struct {
	Config      cashier.Config
	ClientsFile string
}

// Register adds the cashier's flags.
func (s *CashierSettings) Register(f cli.Flags) {
	d := cashier.Defaults()
	s.Config = d
	f.String(&s.Config.Addr, "http-addr", "CAFE_HTTP_ADDR", d.Addr, "address the cashier's HTTP API listens on")
	f.String(&s.ClientsFile, "clients-file", "CAFE_CLIENTS_FILE", "", "client registry, YAML (required; `cafe clients add` creates one); reloaded on SIGHUP")
	f.Int64(&s.Config.MaxBodyBytes, "max-body-bytes", "CAFE_MAX_BODY_BYTES", d.MaxBodyBytes, "largest request body; larger gets 413 (at most 1 MiB)")
	f.Int(&s.Config.MaxBatch, "max-batch", "CAFE_MAX_BATCH", d.MaxBatch, "most requests in one batch")
	f.Duration(&s.Config.DefaultTimeout, "default-timeout", "CAFE_DEFAULT_TIMEOUT", d.DefaultTimeout, "deadline of a command sent without a Cafe-Timeout header")
	f.Duration(&s.Config.MaxTimeout, "max-timeout", "CAFE_MAX_TIMEOUT", d.MaxTimeout, "largest Cafe-Timeout accepted (at most 15m)")
	f.Duration(&s.Config.ConfirmTimeout, "confirm-timeout", "CAFE_CONFIRM_TIMEOUT", d.ConfirmTimeout, "wait for RabbitMQ's confirm before answering 503")
	f.Duration(&s.Config.RetryAfter, "retry-after", "CAFE_RETRY_AFTER", d.RetryAfter, "Retry-After sent with 503 and 429")
	f.Duration(&s.Config.DrainDelay, "drain-delay", "CAFE_DRAIN_DELAY", d.DrainDelay, "on SIGTERM, how long /readyz fails before the listener closes")
	f.Duration(&s.Config.ShutdownGrace, "shutdown-grace", "CAFE_SHUTDOWN_GRACE", d.ShutdownGrace, "on SIGTERM, how long requests in flight may finish")
	f.Bool(&s.Config.Pprof, "pprof", "CAFE_PPROF", false, "serve /debug/pprof/ (profiles)")
}

// BaristaSettings are the barista's flags.
type BaristaSettings struct {
	Config barista.Config
}

// Register adds the barista's flags.
func (s *BaristaSettings) Register(f cli.Flags) {
	f.String(&s.Config.Route, "route", "CAFE_BARISTA_ROUTE", "", "this barista's route level in command topics (default: b-<random>; must be unique per running barista)")
	f.Int(&s.Config.Concurrency, "concurrency", "CAFE_BARISTA_CONCURRENCY", 256, "commands handled at once (also the prefetch count)")
	f.Duration(&s.Config.Grace, "grace", "CAFE_BARISTA_GRACE", 10*time.Second, "on SIGTERM, time to finish the commands in hand before handing them back to the queue")
	f.Duration(&s.Config.ResultTimeout, "result-timeout", "CAFE_BARISTA_RESULT_TIMEOUT", time.Minute, "how long a finished command's result may wait for RabbitMQ (confirm, resource alarm, full results queue) before the command goes back to the queue")
	f.Int(&s.Config.MaxReplyBytes, "max-reply-bytes", "CAFE_MAX_REPLY_BYTES", contracts.DefaultMaxReplyBytes, "largest device reply; larger ones become bad-reply errors")
	f.Int(&s.Config.Breaker.Failures, "breaker-failures", "CAFE_BREAKER_FAILURES", 5, "consecutive timeouts or refused sends that open a device's circuit breaker")
	f.Duration(&s.Config.Breaker.OpenFor, "breaker-open", "CAFE_BREAKER_OPEN", 30*time.Second, "how long an open breaker fails commands fast before one trial")
}

// CallerSettings are the caller's flags.
type CallerSettings struct {
	Config caller.Config
}

// Register adds the caller's flags.
func (s *CallerSettings) Register(f cli.Flags) {
	f.Int(&s.Config.Concurrency, "caller-concurrency", "CAFE_CALLER_CONCURRENCY", 256, "results delivered at once (also the prefetch count)")
	f.Duration(&s.Config.Grace, "caller-grace", "CAFE_CALLER_GRACE", 10*time.Second, "on SIGTERM, time to finish deliveries in hand")
	f.Duration(&s.Config.PublishTimeout, "publish-timeout", "CAFE_CALLER_PUBLISH_TIMEOUT", 10*time.Second, "wait for the MQTT broker's PUBACK of a result")
	f.Duration(&s.Config.WaitMQTT, "wait-mqtt", "CAFE_CALLER_WAIT_MQTT", 10*time.Minute, "hold a result while the MQTT broker is down, up to this (at most 15m)")
}

// NewRegistry is a Prometheus registry with the Go runtime and process
// collectors (memory, CPU, file descriptors) already in it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
