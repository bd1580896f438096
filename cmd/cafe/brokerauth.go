package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// brokerAuthSettings are what `cafe broker-auth` is configured with.
type brokerAuthSettings struct {
	brokers      cli.Brokers
	registryFile string
	keyFile      string
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
registry live elsewhere.`,
		Example: `  cafe broker-auth --clients-file /etc/cafe/clients.yaml
  cafe broker-auth --once && cafe devices list`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	f := cli.On(cmd.Flags())
	s.brokers.RegisterMQTT(f)
	def, keyDef := "", ""
	if dir, err := local.Default(); err == nil {
		def, keyDef = dir.Registry(), dir.KeyFile()
	}
	f.String(&s.registryFile, run.SettingClientsFile, def, "the registry (YAML) whose devices and apps get logins")
	f.String(&s.keyFile, cli.Setting("auth-key-file", local.EnvKey), keyDef, "the auth key the secrets are derived from")
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
	r, closeLink, err := brokerauth.Open(ctx, s.brokers.MQTT(identity.Admin, brokerAuthClientID()), s.registryFile, key, log)
	if err != nil {
		return fmt.Errorf("%w (is Mosquitto running with deploy/mosquitto/cafe.conf? bash deploy/brokers.sh)", err)
	}
	defer closeLink()
	r.Resync = s.resync
	if !s.once {
		log.Info("keeping the broker's logins in step with the registry", "registry", s.registryFile, "resync", s.resync)
		return r.Run(ctx)
	}
	ch, err := r.Round(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "broker logins of %s: %s\n", s.registryFile, ch)
	return nil
}

// brokerAuthClientID is a reconciler's MQTT client id: its own, so any
// number may run.
func brokerAuthClientID() string { return contracts.NewName("cafe-broker-auth-") }
