package main

import (
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
	"cafe/cmd/internal/tier"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
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
	cmd.AddCommand(tierConfCommand())
	return cmd
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
	def, keyDef := "", ""
	if dir, err := local.Default(); err == nil {
		def, keyDef = dir.Registry(), dir.KeyFile()
	}
	f.String(&s.registryFile, run.SettingClientsFile, def, "the registry (YAML) whose devices and apps get logins")
	f.String(&s.keyFile, cli.Setting("auth-key-file", local.EnvKey), keyDef, "the auth key the secrets are derived from")
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
	files := tier.Files{Dynsec: dynsec, BridgePassword: key.ServicePassword(identity.Bridge), UID: -1, GID: -1}
	if os.Geteuid() == 0 { // Mosquitto started as root runs as its own user, who must own its files
		if _, err := user.Lookup(s.mosquittoUser); err == nil {
			if files.UID, files.GID, err = owner(s.mosquittoUser); err != nil {
				return err
			}
		}
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
