package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/tier"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
	"cafe/contracts/registry"
	"cafe/deploy/mosquitto"
)

// tierSettings are what `cafe tier conf` is configured with.
type tierSettings struct {
	plan          tier.Plan
	registryFile  string
	keyFile       string
	mosquittoUser string
}

func tierCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "The MQTT broker tier: a core Mosquitto and N edges bridged to it (task tier:up)",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(tierConfCommand(), tierBridgeCommand(), tierJanitorCommand())
	return cmd
}

// janitorSettings are what `cafe tier janitor` is configured with.
type janitorSettings struct {
	core    string
	edges   []string // name=URL
	logging cli.Log
}

func tierJanitorCommand() *cobra.Command {
	s := &janitorSettings{}
	cmd := &cobra.Command{
		Use:   "janitor",
		Short: "Mark offline on the core the devices of an edge that crashed (deploy/mosquitto/tier.sh runs it)",
		Long: `janitor keeps the core's retained presence true when an edge vanishes. A
crashed edge publishes none of its devices' last wills, so the core would go on
saying they are online, and their commands would end only at their deadline as
device timeouts. The janitor watches every edge's presence (on the edge, as
cafe-admin) and the bridges' state on the core (cafe/bridges/EDGE); when an
edge's bridge goes down it publishes {"online":false}, retained, on the core
for each device that edge last said was online and no other edge says is
online. A device that comes back, on any edge, says online again itself.

Run one per tier (more do no harm: they publish the same). It keeps no state
across restarts: a janitor started after an edge died cannot know its devices.`,
		Example: `  cafe tier janitor --core tcp://127.0.0.1:1893 --edge edge-1=tcp://127.0.0.1:1901 --edge edge-2=tcp://127.0.0.1:1902`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	f := cli.On(cmd.Flags())
	f.String(&s.core, cli.Setting("core", "CAFE_TIER_CORE_URL"), "tcp://127.0.0.1:1893", "the core broker")
	f.StringSlice(&s.edges, cli.Setting("edge", "CAFE_TIER_EDGES_BY_NAME"), nil, "an edge as NAME=URL, NAME as in its bridge (edge-1); repeat, or comma-separated")
	s.logging.Register(f)
	return cmd
}

func (s *janitorSettings) run(cmd *cobra.Command) error {
	log, err := s.logging.Start(cmd.Flags(), os.Stderr)
	if err != nil {
		return err
	}
	if len(s.edges) == 0 {
		return errors.New("--edge: want at least one edge as NAME=URL (CAFE_TIER_EDGES_BY_NAME)")
	}
	edges := map[string]mqttlink.Config{}
	for _, e := range s.edges {
		name, u, ok := strings.Cut(e, "=")
		if !ok || name == "" || u == "" {
			return fmt.Errorf("--edge %q: want NAME=URL, such as edge-1=tcp://127.0.0.1:1901", e)
		}
		edges[name] = s.admin(u)
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	log.Info("watching the tier's edges for the core's presence", "edges", len(edges))
	return tier.RunJanitor(ctx, s.admin(s.core), edges, log)
}

// admin is an MQTT link's configuration to u as cafe-admin (the tier's
// brokers listen on plain TCP: no TLS settings).
func (s *janitorSettings) admin(u string) mqttlink.Config {
	return mqttlink.Config{URL: cli.WithRole(u, mqttlink.DefaultURL, identity.Admin), ClientID: contracts.NewName("cafe-tier-janitor-"), CleanSession: true}
}

func tierConfCommand() *cobra.Command {
	s := &tierSettings{}
	cmd := &cobra.Command{
		Use:   "conf",
		Short: "Write the config, ACL and logins of every broker of the tier (deploy/mosquitto/tier.sh runs it)",
		Long: `conf writes, for a core broker and --edges edge brokers, each broker's folder
below --dir (core, edge-1, edge-2, ...): mosquitto.conf (deploy/mosquitto/cafe.conf's
settings with the broker's own port and files; for an edge, bridge.conf's bridge
to the core), cafe.acl, and the dynamic security plugin's file with every login
the registry calls for: the services (cafe-bridge included), every app and every
device, on every broker, so that a device may connect to any edge.

Writing the plugin's file before a broker starts is the bulk path for logins:
one file for any number of devices (see deploy/README.md, "Logins for a large
fleet"). A running broker does not read its files again (it rewrites the
plugin's file from memory on its next change); start it after conf, or keep it
in step with cafe broker-auth --broker URL for each broker.

It prints one line per broker: name, MQTT URL, folder.`,
		Example: `  cafe tier conf --dir /tmp/cafe-tier --edges 4
  CAFE_CLIENTS_FILE=fleet.yaml cafe tier conf --edges 4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			return s.conf(cmd.OutOrStdout())
		},
	}
	f := cli.On(cmd.Flags())
	f.String(&s.plan.Dir, cli.Setting("dir", "CAFE_TIER_DIR"), tier.DefaultDir, "the tier's folder (one folder per broker below it)")
	f.String(&s.plan.Host, cli.Setting("host", "CAFE_TIER_HOST"), tier.DefaultHost, "the address every broker listens on")
	f.Int(&s.plan.Edges, cli.Setting("edges", "CAFE_TIER_EDGES"), tier.DefaultEdges, "how many edge brokers")
	f.Int(&s.plan.CorePort, cli.Setting("core-port", "CAFE_TIER_CORE_PORT"), tier.DefaultCorePort, "the core's port")
	f.Int(&s.plan.FirstEdgePort, cli.Setting("edge-port", "CAFE_TIER_EDGE_PORT"), tier.DefaultFirstEdgePort, "edge-1's port; edge-N listens on this + N - 1")
	registerLoginSources(f, &s.registryFile, &s.keyFile)
	cmd.Flags().StringVar(&s.mosquittoUser, "mosquitto-user", "mosquitto", "the user Mosquitto runs as when started as root, who must own its files")
	return cmd
}

func (s *tierSettings) conf(out io.Writer) error {
	if err := s.plan.Validate(); err != nil {
		return err
	}
	key, err := identity.LoadKey(s.keyFile)
	if err != nil {
		return err
	}
	reg, err := registry.Load(s.registryFile)
	if err != nil {
		return err
	}
	dynsec, err := brokerauth.Render(reg, s.registryFile, key)
	if err != nil {
		return err
	}
	files := tier.Files{Dynsec: dynsec, BridgePassword: key.ServicePassword(identity.Bridge)}
	if err := files.RunAs(s.mosquittoUser); err != nil {
		return err
	}
	if err := tier.Write(s.plan, files); err != nil {
		return err
	}
	for _, b := range s.plan.Brokers() {
		fmt.Fprintf(out, "%s %s %s\n", b.Name, b.URL(), b.Dir)
	}
	fmt.Fprintf(os.Stderr, "tier: logins of %s (%d apps, %d devices, the services) on every broker\n", s.registryFile, reg.Len(), len(reg.Devices()))
	return nil
}

// bridgeSettings are what `cafe tier bridge` is configured with.
type bridgeSettings struct {
	bridge   tier.Bridge
	template string
	keyFile  string
}

func tierBridgeCommand() *cobra.Command {
	s := &bridgeSettings{}
	cmd := &cobra.Command{
		Use:   "bridge",
		Short: "Print one edge's bridge to the core: bridge.conf filled in, as cafe tier conf appends it",
		Long: `bridge prints the bridge of one edge broker to the core, for an edge whose
config is written elsewhere (a Kubernetes pod: deploy/k8s/base/mosquitto/render.sh
appends it): --template (deploy/mosquitto/bridge.conf, or the copy a pod mounts;
default the one built in) filled in with --name, --core and cafe-bridge's
password, derived from the auth key, exactly as cafe tier conf fills it in.`,
		Example: `  cafe tier bridge --name edge-3 --core core.example:1883 >>/etc/mosquitto/conf.d/bridge.conf`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			return s.print(cmd.OutOrStdout())
		},
	}
	f := cli.On(cmd.Flags())
	f.String(&s.bridge.Name, cli.Setting("name", "CAFE_TIER_BRIDGE_NAME"), "", "the edge's name: its bridge's connection name, client ids and cafe/bridges/NAME")
	f.String(&s.bridge.Core, cli.Setting("core", "CAFE_TIER_BRIDGE_CORE"), "", "host:port of the core broker")
	f.String(&s.template, cli.Setting("template", "CAFE_TIER_BRIDGE_TEMPLATE"), "", "the bridge.conf to fill in (default: deploy/mosquitto/bridge.conf, built in)")
	registerKeyFile(f, &s.keyFile)
	return cmd
}

func (s *bridgeSettings) print(out io.Writer) error {
	text := mosquitto.Bridge
	if s.template != "" {
		raw, err := os.ReadFile(s.template)
		if err != nil {
			return err
		}
		text = string(raw)
	}
	key, err := identity.LoadKey(s.keyFile)
	if err != nil {
		return err
	}
	s.bridge.Password = key.ServicePassword(identity.Bridge)
	conf, err := tier.BridgeConf(text, s.bridge)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, conf)
	return err
}
