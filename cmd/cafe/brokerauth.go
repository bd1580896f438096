package main

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
)

// brokerAuthSettings are what `cafe broker-auth` is configured with.
type brokerAuthSettings struct {
	brokers      cli.Brokers
	registryFile string
	keyFile      string
	others       []string // further brokers (an MQTT tier's core and edges)
	once         bool
	resync       time.Duration
	logging      cli.Log
}

func brokerAuthCommand() *cobra.Command {
	s := &brokerAuthSettings{}
	cmd := &cobra.Command{
		Use:   "broker-auth",
		Short: "Keep Mosquitto's logins in step with the registry (what cafe up does on its own)",
		Long: `broker-auth makes the MQTT broker's logins what the registry says: one per
device (user name and client id = its id, password = its secret), one per app
(user name and client id = its client id, password = what POST /v1/sessions
gives it), through Mosquitto's dynamic security plugin, as cafe-admin. It
creates what is missing, updates what changed (a rotated secret or token) and
deletes what the registry no longer has; a client logged in with an updated
or deleted login is disconnected at once, and a removed device's retained
presence is cleared.

It runs until stopped, reconciling whenever the registry file changes (within
about a second) and every --resync; --once reconciles once and exits. It keeps
no state of its own, so it may be restarted, or run on another host, at any
time. It needs the auth key (CAFE_AUTH_KEY_FILE) the secrets are derived from,
and cafe-admin's MQTT login (derived from the same key when CAFE_MQTT_URL has
no user). cafe up runs it for you; run it yourself when the cashier and the
registry live elsewhere.

--broker URL (repeatable) names each broker whose logins it keeps, for an MQTT
tier (a core and its edges: task tier:up prints the list); without it, the one
broker of CAFE_MQTT_URL. Each is reconciled on its own link as cafe-admin (a
URL without a login gets cafe-admin's from the auth key), so one broker that
is down delays nobody else's.`,
		Example: `  cafe broker-auth --clients-file /etc/cafe/clients.yaml
  cafe broker-auth --once && cafe devices list
  cafe broker-auth --broker tcp://127.0.0.1:1893 --broker tcp://127.0.0.1:1901 --broker tcp://127.0.0.1:1902`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	f := cli.On(cmd.Flags())
	s.brokers.RegisterMQTT(f)
	registerLoginSources(f, &s.registryFile, &s.keyFile)
	f.StringSlice(&s.others, cli.Setting("broker", "CAFE_BROKER_AUTH_BROKERS"), nil, "a broker whose logins to keep (repeat, or comma-separated); default: CAFE_MQTT_URL's")
	cmd.Flags().BoolVar(&s.once, "once", false, "reconcile once, print what changed, and exit")
	cmd.Flags().DurationVar(&s.resync, "resync", 5*time.Minute, "compare everything with the broker this often, besides every change of the file")
	s.logging.Register(f)
	return cmd
}

func (s *brokerAuthSettings) run(cmd *cobra.Command) error {
	log, err := s.logging.Start(cmd.Flags(), os.Stderr)
	if err != nil {
		return err
	}
	if s.resync <= 0 {
		return fmt.Errorf("--resync %v: want more than 0", s.resync)
	}
	key, err := identity.LoadKey(s.keyFile)
	if err != nil {
		return err
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	urls := s.others
	if len(urls) == 0 {
		urls = []string{s.brokers.MQTTURL}
	}
	reconcilers := make([]*brokerauth.Reconciler, 0, len(urls))
	for _, u := range urls {
		cfg := s.brokers.MQTT(identity.Admin, brokerAuthClientID())
		cfg.URL = cli.WithRole(u, mqttlink.DefaultURL, identity.Admin)
		r, closeLink, err := brokerauth.Open(ctx, cfg, s.registryFile, key, log.With("broker", redacted(u)))
		if err != nil {
			return fmt.Errorf("%s: %w (is Mosquitto running with deploy/mosquitto/cafe.conf? bash deploy/brokers.sh)", redacted(u), err)
		}
		defer closeLink()
		r.Resync = s.resync
		reconcilers = append(reconcilers, r)
	}
	if !s.once {
		log.Info("keeping the brokers' logins in step with the registry", "registry", s.registryFile, "brokers", len(reconcilers), "resync", s.resync)
		return brokerauth.RunAll(ctx, reconcilers)
	}
	for i, r := range reconcilers {
		ch, err := r.Round(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", redacted(urls[i]), err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "broker logins of %s on %s: %s\n", s.registryFile, redacted(urls[i]), ch)
	}
	return nil
}

// redacted is a broker URL without its password, for messages.
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a broker URL that does not parse)"
	}
	return u.Redacted()
}

// registerLoginSources adds the flags of where brokers' logins come from:
// the registry and the auth key (this machine's by default), shared by
// cafe broker-auth and cafe tier conf.
func registerLoginSources(f cli.Flags, registryFile, keyFile *string) {
	def := ""
	if dir, err := local.Default(); err == nil {
		def = dir.Registry()
	}
	f.String(registryFile, run.SettingClientsFile, def, "the registry (YAML) whose devices and apps get logins")
	registerKeyFile(f, keyFile)
}

// registerKeyFile registers --auth-key-file (CAFE_AUTH_KEY_FILE).
func registerKeyFile(f cli.Flags, keyFile *string) {
	def := ""
	if dir, err := local.Default(); err == nil {
		def = dir.KeyFile()
	}
	f.String(keyFile, cli.Setting("auth-key-file", local.EnvKey), def, "the auth key the secrets are derived from")
}

// brokerAuthClientID is a reconciler's MQTT client id: its own, so any
// number may run.
func brokerAuthClientID() string { return contracts.NewName("cafe-broker-auth-") }
