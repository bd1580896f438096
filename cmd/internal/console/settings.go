package console

import (
	"cafe/cmd/internal/mgmt"
	"context"
	"log/slog"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/status"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// Where a standalone console reads what RabbitMQ does not know.
var (
	SettingMetricsURL = contracts.Setting{Flag: "console-metrics-url", Env: "CAFE_CONSOLE_METRICS_URL"}
	SettingBaristas   = status.SettingBaristaMetrics
	SettingCallers    = status.SettingCallerMetrics
)

// DefaultManagementAPI is RabbitMQ's management API on this machine.
const DefaultManagementAPI = mgmt.DefaultURL

// Settings are the console's flags, shared by `cafe console` and `cafe up`.
type Settings struct {
	Config     Config
	API        string   // RabbitMQ's management API
	MetricsURL string   // a /metrics page with cafe_caller_end_to_end_seconds
	Baristas   []string // the baristas' /metrics (breakers open)
	Callers    []string // the callers' /metrics
	AuditFile  string
}

// Register adds the console's flags (the registry and brokers are the
// command's own).
func (s *Settings) Register(f cli.Flags) {
	d := Defaults()
	dir, _ := local.Default()
	f.String(&s.Config.Addr, SettingAddr, d.Addr, "address the web console listens on")
	f.String(&s.Config.CertFile, SettingCertFile, "", "serve the console over HTTPS with this certificate (PEM); needs --console-key-file")
	f.String(&s.Config.KeyFile, SettingKeyFile, "", "the private key (PEM) of --console-cert-file")
	f.Duration(&s.Config.SessionTTL, SettingSessionTTL, d.SessionTTL, "how long an operator's console session lasts")
	f.String(&s.API, SettingManagement, DefaultManagementAPI, "RabbitMQ's management API (queues, rates, consumers)")
	f.StringSlice(&s.Baristas, SettingBaristas, nil, "the baristas' /metrics URLs, comma-separated, for the breakers open (cafe up: its own)")
	f.StringSlice(&s.Callers, SettingCallers, nil, "the callers' /metrics URLs, comma-separated (cafe up: its own)")
	f.String(&s.MetricsURL, SettingMetricsURL, "http://127.0.0.1:8080/metrics", "a cashier's or caller's /metrics, for the p99 latency chart (cafe up: its own)")
	if !f.Has(contracts.Setting{Flag: "audit-file"}) {
		f.String(&s.AuditFile, cli.Setting("audit-file", "CAFE_AUDIT_FILE"), filepath.Join(string(dir), "audit.jsonl"), "JSON-lines file every replay and purge is recorded in")
	}
}

// Build makes the console and what runs beside it (the registry watcher,
// the presence link). metrics, if set, is the process's own registry.
func (s *Settings) Build(b cli.Brokers, registryFile string, metrics prometheus.Gatherer, log *slog.Logger) (*Server, []func(context.Context) error, error) {
	x := NewIndex()
	reg, err := LoadRegistry(registryFile, x, log)
	if err != nil {
		return nil, nil, err
	}
	if metrics == nil {
		metrics = Scrape(s.MetricsURL)
	}
	amqpURL := cli.AMQPWithRole(b.AMQPURL, identity.Ops)
	user, pass := login(amqpURL)
	g := status.New(status.Config{Topology: b.Topology(), ManagementURL: s.API, User: user, Password: pass, AMQPURL: amqpURL, NoPresence: true,
		Baristas: s.Baristas, Callers: s.Callers, Timeout: 2 * time.Second}, log)
	mgmt := NewStatus(g, NewLatency(metrics), time.Second)
	pres, err := NewPresence(b.MQTT(identity.Ops, "cafe-console-"+randomToken()[:8]), x, log.With("link", "presence"))
	if err != nil {
		return nil, nil, err
	}
	dead := &Dead{URL: amqpURL, Top: b.Topology(), Registry: reg.Current, AuditFile: s.AuditFile, Log: log}
	srv, err := New(s.Config, Sources{Registry: reg.Current, Devices: x, Pipeline: mgmt, Dead: dead, States: []func() SourceState{pres.State}}, log)
	if err != nil {
		return nil, nil, err
	}
	return srv, []func(context.Context) error{reg.Run, pres.Run, srv.Run}, nil
}

// login is the user and password of a broker URL.
func login(raw string) (user, password string) {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return "", ""
	}
	password, _ = u.User.Password()
	return u.User.Username(), password
}
