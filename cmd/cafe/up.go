package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/console"
	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/run"
	"cafe/cmd/internal/scale"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// upSettings are everything `cafe up` is configured with.
type upSettings struct {
	brokers cli.Brokers
	cashier run.CashierSettings
	barista run.BaristaSettings
	caller  run.CallerSettings
	ledger  run.LedgerSettings
	ledgers int
	logging cli.Log
	fleet   devicesim.Config
	console console.Settings

	consoleURL string // where the console listens, once built

	autoscale bool // baristas run as child processes, sized by the queue
	scale     scale.Settings
}

func upCommand() *cobra.Command {
	s := &upSettings{fleet: devicesim.Defaults()}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole pipeline on this machine: cashier, barista, caller and ledger in one process",
		Long: `up runs cafe's main job in one process against the configured brokers: the
cashier (HTTP on CAFE_HTTP_ADDR), a barista, a caller and a ledger (PostgreSQL
at CAFE_POSTGRES_URL; --ledgers 0 for none: the events queue is then declared
unbound, nothing is copied or posted to it, and the cashier keeps no
records), with --devices N a fleet of N
simulated devices, and the web console on CAFE_CONSOLE_ADDR (127.0.0.1:8081;
log in with a token from cafe operators add). It stops cleanly on Ctrl-C or SIGTERM; SIGHUP
reloads the client registry.

With no CAFE_CLIENTS_FILE, up uses a local registry in ~/.config/cafe (or
CAFE_CONFIG_DIR); on first run it creates a demo client that may command any
device and prints its token with ready-to-paste curl and mosquitto_sub lines.`,
		Example: `  cafe up --devices 10
  CAFE_HTTP_ADDR=:9090 cafe up --devices 100 --device-latency 5ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	f := cli.On(cmd.Flags())
	s.brokers.Register(f)
	s.cashier.Register(f)
	s.barista.Register(f)
	s.caller.Register(f)
	s.brokers.RegisterPostgres(f)
	s.ledger.Register(f)
	f.Int(&s.ledgers, cli.Setting("ledgers", "CAFE_LEDGERS"), 1, "ledgers to run in the same process (0: none; the events queue then gets no copies, events or refusals, and the cashier keeps no records: no duplicate-id lookup, GET /v1/commands answers 503)")
	f.Int(&s.fleet.Count, cli.Setting("devices", "CAFE_DEVICES"), 0, "run this many simulated devices in the same process (0: none)")
	f.String(&s.fleet.Pattern, cli.Setting("device-pattern", "CAFE_DEVICE_PATTERN"), devicesim.DefaultPattern, "printf pattern of simulated device ids, numbered from 1")
	f.Duration(&s.fleet.Latency, cli.Setting("device-latency", "CAFE_DEVICE_LATENCY"), 0, "simulated devices wait this long before replying")
	f.Float(&s.fleet.ErrorRate, cli.Setting("device-error-rate", "CAFE_DEVICE_ERROR_RATE"), 0, "fraction (0..1) of commands simulated devices answer with an error")
	s.console.Register(f)
	cmd.Flags().BoolVar(&s.autoscale, "autoscale", false, "run baristas as child processes (the barista binary next to this one), as many as the commands queue needs between --min and --max (see cafe scale); they take their settings from the environment (CAFE_BARISTA_*), not from this command's barista flags")
	s.scale.Register(f, false)
	s.logging.Register(f)
	return cmd
}

// run builds the pipeline, prints the banner once it is ready, and runs it
// until Ctrl-C or SIGTERM.
func (s *upSettings) run(cmd *cobra.Command) error {
	run.SetGC() // the services' collector setting (cafe's other commands keep Go's)
	log, err := s.logging.Start(cmd.Flags(), os.Stderr)
	if err != nil {
		return err
	}
	var demo demoClient
	if s.cashier.ClientsFile == "" {
		if demo, err = ensureDemo(); err != nil {
			return err
		}
		s.cashier.ClientsFile = demo.registry
	}
	p, fleet, err := s.pipeline(log)
	if err != nil {
		return err
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	out := cmd.OutOrStdout()
	go func() {
		if p.WaitReady(ctx) && (fleet == nil || fleet.WaitOnline(ctx) == nil) {
			banner(out, p.Cashier.Scheme(), p.Cashier.Addr(), s.brokers.MQTTURL, s.baristas(), s.cashier.ClientsFile, demo, demoSessionPassword(s.cashier.SessionKeyFile, demo), fleet)
			fmt.Fprintf(out, "web console: %s (log in with an operator token: cafe operators add --id NAME)\n", s.consoleURL)
		}
	}()
	err = p.Run(ctx)
	if fleet != nil {
		_ = fleet.Stats().WriteTable(out)
	}
	return err
}

// newLedgers makes the --ledgers ledgers.
func (s *upSettings) newLedgers(prom *prometheus.Registry, log *slog.Logger) ([]*run.Ledger, error) {
	var out []*run.Ledger
	for range s.ledgers {
		l, err := run.NewLedger(s.brokers, s.ledger, prom, log.With("role", "ledger"))
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// pipeline is one cashier, barista and caller in this process, with the
// simulated fleet (if any) running alongside.
func (s *upSettings) pipeline(log *slog.Logger) (*run.Pipeline, *devicesim.Fleet, error) {
	if s.fleet.Count > 0 {
		if err := s.registerFleet(); err != nil { // before the cashier reads the registry
			return nil, nil, err
		}
	}
	run.ShareTrust(&s.barista, &s.caller)
	if s.ledgers == 0 {
		// No records: nothing is copied into the events queue nor posted
		// to it (see contracts.Topology.Unrecorded).
		s.brokers.Unrecorded()
	}
	prom := run.NewRegistry()
	cash, err := run.NewCashier(s.brokers, s.cashier, prom, log.With("role", "cashier"))
	if err != nil {
		return nil, nil, err
	}
	call, err := run.NewCaller(s.brokers, s.caller, prom, log.With("role", "caller"))
	if err != nil {
		return nil, nil, err
	}
	p := &run.Pipeline{Cashier: cash, Callers: []*run.Caller{call}, Log: log,
		Alongside: []func(context.Context) error{run.DeclareTopology(s.brokers, log.With("role", "admin"))}}
	if err := s.addBaristas(p, prom, log); err != nil {
		return nil, nil, err
	}
	if p.Ledgers, err = s.newLedgers(prom, log); err != nil {
		return nil, nil, err
	}
	if err := s.keepBrokerAuth(p, log); err != nil {
		return nil, nil, err
	}
	s.ownMetrics(cash)
	con, parts, err := s.console.Build(s.brokers, s.cashier.ClientsFile, prom, log.With("role", "console"))
	if err != nil {
		return nil, nil, err
	}
	p.Alongside, s.consoleURL = append(p.Alongside, parts...), con.URL()
	if s.fleet.Count == 0 {
		return p, nil, nil
	}
	s.fleet.MQTTURL, s.fleet.MQTTTLS = s.brokers.MQTTURL, s.brokers.MQTTTLS
	fleet, err := devicesim.New(s.fleet, log.With("role", "devicesim"))
	if err != nil {
		return nil, nil, err
	}
	p.Alongside = append(p.Alongside, func(ctx context.Context) error {
		if err := fleet.Run(ctx); err != nil {
			return fmt.Errorf("device simulator: %w", err)
		}
		return nil
	})
	return p, fleet, nil
}

// addBaristas adds one barista in this process, or with --autoscale the
// supervisor that runs them as child processes (which read their settings
// from the environment, CAFE_BARISTA_*, and get the broker settings given here).
func (s *upSettings) addBaristas(p *run.Pipeline, prom *prometheus.Registry, log *slog.Logger) error {
	if !s.autoscale {
		bar, err := run.NewBarista(s.brokers, s.barista, prom, log.With("role", "barista"))
		if err != nil {
			return err
		}
		p.Baristas = []*run.Barista{bar}
		return nil
	}
	s.scale.ManagementURL = s.console.API // one --management-url for the console and the supervisor
	l, err := s.scale.Build(s.brokers, prom, log.With("role", "scale"))
	if err != nil {
		return err
	}
	p.Alongside = append(p.Alongside, l.Run)
	return nil
}

// keepBrokerAuth runs the reconciler that keeps the MQTT broker's logins
// in step with the registry, as cafe-admin (this machine's auth key).
func (s *upSettings) keepBrokerAuth(p *run.Pipeline, log *slog.Logger) error {
	key, err := local.MachineKey()
	if err != nil {
		return err
	}
	cfg := s.brokers.MQTT(identity.Admin, brokerAuthClientID())
	p.Alongside = append(p.Alongside, brokerauth.Keep(cfg, s.cashier.ClientsFile, key, log.With("role", "broker-auth")))
	return nil
}

// registerFleet registers the simulated devices (those not registered yet)
// and gives the fleet their secrets.
func (s *upSettings) registerFleet() error {
	key, err := local.MachineKey()
	if err != nil {
		return err
	}
	ids := make([]string, s.fleet.Count)
	for i := range ids {
		ids[i] = fmt.Sprintf(s.fleet.Pattern, s.fleet.First+i)
	}
	secrets, err := registry.EnsureDevices(s.cashier.ClientsFile, key, ids)
	if err != nil {
		return fmt.Errorf("register the simulated devices: %w", err)
	}
	s.fleet.Secret = func(id string) string { return secrets[id] }
	return nil
}

// baristas says how many baristas run, for the banner.
func (s *upSettings) baristas() string {
	if s.autoscale {
		return fmt.Sprintf("%d to %d baristas (autoscaled)", s.scale.Min, s.scale.Max)
	}
	return "1 barista"
}

// banner tells a newcomer what is running and how to use it.
func banner(w io.Writer, scheme string, addr net.Addr, mqttURL, baristas, registry string, demo demoClient, sessionPassword string, fleet *devicesim.Fleet) {
	port := "8080"
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	base := scheme + "://127.0.0.1:" + port
	mqttHost, mqttPort := "127.0.0.1", "1883"
	if h, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(mqttURL, "tcp://"), "mqtt://")); err == nil {
		mqttHost, mqttPort = h, p
	}
	device := "lamp-1"
	fmt.Fprintf(w, "\ncafe is up: cashier %s, %s, 1 caller", base, baristas)
	if fleet != nil {
		ids := fleet.IDs()
		device = ids[0]
		fmt.Fprintf(w, ", %d simulated devices (%s … %s)", len(ids), ids[0], ids[len(ids)-1])
	}
	fmt.Fprintf(w, "\nclient registry: %s\n", registry)
	if demo.token == "" {
		fmt.Fprintf(w, "\nUse a token from your registry; results go to clients/{clientID}/results.\nStop with Ctrl-C.\n\n")
		return
	}
	if demo.created {
		fmt.Fprintf(w, "created the demo client %q; its token (also kept next to the registry):\n  %s\n", demoClientID, demo.token)
	}
	fmt.Fprintf(w, `
An app gets its MQTT login from the cashier, with its token:
  curl -s -X POST %[1]s/v1/sessions -H 'Authorization: Bearer %[2]s'

With it, watch the demo client's results (in another terminal):
  mosquitto_sub -h %[3]s -p %[4]s -i %[5]s -u %[5]s -P '%[6]s' -t 'clients/%[5]s/results' -q 1 -v

Send a command:
  curl -s -X POST %[1]s/v1/devices/%[7]s/commands -H 'Authorization: Bearer %[2]s' -H 'Cafe-Timeout: 5s' -d '{"jsonrpc":"2.0","method":"echo","params":{"hello":"cafe"},"id":1}'

Or submit and wait for the result in one go:
  cafe order --device %[7]s --method echo --params '{"hello":"cafe"}'

Stop with Ctrl-C.

`, base, demo.token, mqttHost, mqttPort, demoClientID, sessionPassword, device)
}

// demoSessionPassword is the MQTT password POST /v1/sessions gives the
// demo client ("" without a session key).
func demoSessionPassword(keyFile string, demo demoClient) string {
	key, err := run.SessionKey(keyFile)
	if err != nil || !key.Valid() {
		return ""
	}
	return key.AppPassword(demoClientID, identity.SHA256(demo.token))
}

// ownMetrics points the console at this process's /metrics (served by the
// cashier, the one registry every role here counts in) for the baristas
// and callers, unless it was given theirs.
func (s *upSettings) ownMetrics(cash *run.Cashier) {
	port := "8080"
	if tcp, ok := cash.Addr().(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	own := cash.Scheme() + "://127.0.0.1:" + port + "/metrics"
	if len(s.console.Baristas) == 0 {
		s.console.Baristas = []string{own}
	}
	if len(s.console.Callers) == 0 {
		s.console.Callers = []string{own}
	}
}
