package run

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"cafe/barista"
	"cafe/caller"
	"cafe/caller/ledger"
	"cafe/cashier"
	"cafe/cmd/internal/cli"
	"cafe/contracts/identity"
	"cafe/contracts/ops"
)

// The settings of each role: its package's Config, registered as flags
// from the package's own Settings and Defaults, so a default or a name is
// written in one place only.

// CashierSettings are the cashier's flags (the HTTP address is CAFE_HTTP_ADDR).
type CashierSettings struct {
	Config         cashier.Config
	ClientsFile    string
	SessionKeyFile string // the key of app sessions (hex); none: derived from the local auth key
}

// SettingSessionKeyFile is the cashier's session key.
var SettingSessionKeyFile = cli.Setting("session-key-file", "CAFE_SESSION_KEY_FILE")

// SettingClientsFile is the client registry.
var SettingClientsFile = cli.Setting("clients-file", "CAFE_CLIENTS_FILE")

// Register adds the cashier's flags.
func (s *CashierSettings) Register(f cli.Flags) {
	d := cashier.Defaults()
	c := &s.Config
	f.String(&c.Addr, cashier.SettingAddr, d.Addr, "address the cashier's HTTP API listens on")
	f.String(&s.ClientsFile, SettingClientsFile, "", "client registry, YAML (required; `cafe clients add` creates one); reloaded on SIGHUP")
	f.Int64(&c.MaxBodyBytes, cashier.SettingMaxBodyBytes, d.MaxBodyBytes, "largest request body; larger gets 413 (at most 1 MiB)")
	f.Int(&c.MaxBatch, cashier.SettingMaxBatch, d.MaxBatch, "most requests in one batch")
	f.Duration(&c.DefaultTimeout, cashier.SettingDefaultTimeout, d.DefaultTimeout, "deadline of a command sent without a Cafe-Timeout header")
	f.Duration(&c.MaxTimeout, cashier.SettingMaxTimeout, d.MaxTimeout, "largest Cafe-Timeout accepted (at most 15m)")
	f.Duration(&c.ConfirmTimeout, cashier.SettingConfirmTimeout, d.ConfirmTimeout, "wait for RabbitMQ's confirm before answering 503")
	f.Duration(&c.RetryAfter, cashier.SettingRetryAfter, d.RetryAfter, "Retry-After sent with 503 and 429")
	f.Duration(&c.DrainDelay, cashier.SettingDrainDelay, d.DrainDelay, "on SIGTERM, how long /readyz fails before the listener closes")
	f.Duration(&c.ShutdownGrace, cashier.SettingShutdownGrace, d.ShutdownGrace, "on SIGTERM, how long requests in flight may finish")
	f.Duration(&c.BodyTimeout, cashier.SettingBodyTimeout, d.BodyTimeout, "a request body must arrive within this of its headers; later gets 408 and the connection closed")
	f.Int(&c.MaxConns, cashier.SettingMaxConns, d.MaxConns, "HTTP connections served at once (health and metrics included); more wait to be accepted; keep it well below the open-files limit (ulimit -n)")
	f.String(&c.CertFile, cashier.SettingCertFile, "", "serve HTTPS with this certificate (PEM); needs --http-key-file")
	f.String(&c.KeyFile, cashier.SettingKeyFile, "", "the private key (PEM) of --http-cert-file")
	f.Bool(&c.Pprof, cashier.SettingPprof, d.Pprof, "serve /debug/pprof/ (profiles)")
	f.String(&s.SessionKeyFile, SettingSessionKeyFile, "", "key of the MQTT passwords POST /v1/sessions gives apps (`cafe credentials session-key`); default: derived from this machine's auth key")
	f.String(&c.SessionMQTTURL, cashier.SettingSessionMQTTURL, d.SessionMQTTURL, "the MQTT broker URL POST /v1/sessions tells apps to connect to")
	f.Float(&c.ClientRate, cashier.SettingClientRate, d.ClientRate, "commands per second a client may submit when its registry entry sets no rate (0: no limit)")
	f.Int(&c.ClientBurst, cashier.SettingClientBurst, d.ClientBurst, "commands a client may submit at once above that rate")
}

// BaristaSettings are the barista's flags.
type BaristaSettings struct {
	Config barista.Config
}

// Register adds the barista's flags.
func (s *BaristaSettings) Register(f cli.Flags) {
	d := barista.Defaults()
	c := &s.Config
	f.String(&c.Route, barista.SettingRoute, d.Route, "this barista's route level in command topics (default: b-<random>; must be unique per running barista)")
	f.Int(&c.Concurrency, barista.SettingConcurrency, d.Concurrency, "commands handled at once (also the prefetch count)")
	f.Duration(&c.Grace, barista.SettingGrace, d.Grace, "on SIGTERM, time to finish the commands in hand before handing them back to the queue")
	f.Duration(&c.ResultTimeout, barista.SettingResultTimeout, d.ResultTimeout, "how long a finished command's result may wait for RabbitMQ (confirm, resource alarm, full results queue) before the command goes back to the queue")
	f.Int(&c.MaxReplyBytes, barista.SettingMaxReplyBytes, d.MaxReplyBytes, "largest device reply; larger ones become bad-reply errors")
	f.Duration(&c.MaxTimeout, barista.SettingMaxTimeout, d.MaxTimeout, "cap on every command's deadline, whatever the message says (at most 15m)")
	f.StringSlice(&c.Publishers, identity.SettingCommandPublishers, d.Publishers, "AMQP users a command may come from (its user-id); others are dead-lettered unread")
	f.Int(&c.Breaker.Failures, barista.SettingBreakerFailures, d.Breaker.Failures, "consecutive timeouts or refused sends that open a device's circuit breaker")
	f.Duration(&c.Breaker.OpenFor, barista.SettingBreakerOpen, d.Breaker.OpenFor, "how long an open breaker fails commands fast before one trial")
}

// CallerSettings are the caller's flags.
type CallerSettings struct {
	Config caller.Config
}

// Register adds the caller's flags.
func (s *CallerSettings) Register(f cli.Flags) {
	d := caller.Defaults()
	c := &s.Config
	f.Int(&c.Concurrency, caller.SettingConcurrency, d.Concurrency, "results delivered at once (also the prefetch count)")
	f.Duration(&c.Grace, caller.SettingGrace, d.Grace, "on SIGTERM, time to finish deliveries in hand")
	f.Duration(&c.PublishTimeout, caller.SettingPublishTimeout, d.PublishTimeout, "wait for the MQTT broker's PUBACK of a result")
	f.Duration(&c.WaitMQTT, caller.SettingWaitMQTT, d.WaitMQTT, "hold a result while the MQTT broker is down, up to this (at most 15m)")
	f.StringSlice(&c.ResultPublishers, identity.SettingResultPublishers, d.ResultPublishers, "AMQP users a result may come from (its user-id); others are dead-lettered undelivered")
	if !f.Has(identity.SettingCommandPublishers) { // cafe up: the barista's flag says it for both (ShareTrust)
		f.StringSlice(&c.CommandPublishers, identity.SettingCommandPublishers, d.CommandPublishers, "AMQP users a dead-lettered command must come from for its app to get a notice")
	}
}

// LedgerSettings are the ledger's flags (its database is CAFE_POSTGRES_URL,
// registered with the brokers).
type LedgerSettings struct {
	Config ledger.Config
}

// Register adds the ledger's flags.
func (s *LedgerSettings) Register(f cli.Flags) {
	d := ledger.Defaults()
	c := &s.Config
	f.Duration(&c.Retention, ledger.SettingRetention, d.Retention, "how long commands, their history and results are kept after their first event")
	f.Int(&c.BatchSize, ledger.SettingBatchSize, d.BatchSize, "events written in one transaction (one message's events are never split) and the prefetch in messages")
	f.Duration(&c.BatchWait, ledger.SettingBatchWait, d.BatchWait, "how long the first event of a batch waits for more")
	f.Duration(&c.Grace, ledger.SettingGrace, d.Grace, "on SIGTERM, time to write the batch in hand before handing it back")
}

// ShareTrust gives the caller the barista's command publishers, when both
// run in one process from one set of flags (cafe up).
func ShareTrust(b *BaristaSettings, c *CallerSettings) {
	c.Config.CommandPublishers = b.Config.Publishers
}

// DefaultOpsAddr is where a worker's ops server listens unless told: this
// host only, on a free port (it is logged). Metrics and profiles say a lot
// about a fleet; exposing them is an operator's choice.
const DefaultOpsAddr = "127.0.0.1:0"

// OpsSettings are the flags of a worker's ops server (the cashier serves
// the same routes on its API address).
type OpsSettings struct {
	Addr  string
	Pprof bool
}

// Register adds --http-addr and --pprof.
func (s *OpsSettings) Register(f cli.Flags) {
	f.String(&s.Addr, ops.SettingAddr, DefaultOpsAddr, "address of /healthz, /readyz and /metrics (port 0 picks a free one; 0.0.0.0:PORT or :PORT to be scraped from other hosts)")
	f.Bool(&s.Pprof, ops.SettingPprof, false, "serve /debug/pprof/ (profiles)")
}

// NewRegistry is a Prometheus registry with the Go runtime and process
// collectors (memory, CPU, file descriptors) already in it.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
