package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/certs"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// setupSettings say where the brokers of this machine keep cafe's files.
type setupSettings struct {
	mosquittoDir  string // the ACL file and TLS files Mosquitto reads
	dynsecFile    string // the dynamic security plugin's file
	mosquittoUser string
	forceDynsec   bool
	rabbitmq      bool
	rabbitmqTLS   string // where RabbitMQ reads its TLS files
	rabbitmqUser  string
	rabbitmqNode  string // rabbitmqctl -n: a node of the cluster (empty: the default node)
	certsOnly     bool
}

func setupCommand() *cobra.Command {
	s := &setupSettings{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Prepare this machine's brokers for cafe: auth key, certificates, Mosquitto's logins, RabbitMQ's users",
		Long: `setup makes what the brokers need before cafe can run on this machine, and
is run by deploy/brokers.sh (task setup) as root. Everything it makes is
kept if it exists, so it can run again at any time:

  - (--certs-only stops after the certificates: brokers.sh runs it before
    starting RabbitMQ, whose TLS listener needs them)
  - the installation folder (CAFE_CONFIG_DIR) with the auth key every secret
    is derived from, and an empty registry;
  - a local CA and TLS certificates for the brokers and the cashier
    (CAFE_CONFIG_DIR/tls), Mosquitto's copied to --mosquitto-dir/tls and
    RabbitMQ's to --rabbitmq-tls-dir, each owned by the broker's user;
  - the dynamic security plugin's file with every login the registry calls
    for (only when it does not exist: a running broker is kept in step by
    the reconciler instead; --force-dynsec rewrites it, for a stopped broker);
  - with --rabbitmq: one RabbitMQ user per role with least privilege, and
    the guest user removed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(cmd.OutOrStdout()) },
	}
	f := cmd.Flags()
	f.StringVar(&s.mosquittoDir, "mosquitto-dir", "/etc/mosquitto/cafe", "where Mosquitto reads cafe's TLS files (tls/)")
	f.StringVar(&s.dynsecFile, "dynsec-file", "/var/lib/mosquitto/cafe-dynsec.json", "the dynamic security plugin's file (plugin_opt_config_file in cafe.conf)")
	f.StringVar(&s.mosquittoUser, "mosquitto-user", "mosquitto", "the user Mosquitto runs as, who must own its files")
	f.BoolVar(&s.forceDynsec, "force-dynsec", false, "rewrite the plugin's file even if it exists (only with Mosquitto stopped)")
	f.StringVar(&s.rabbitmqTLS, "rabbitmq-tls-dir", "/etc/rabbitmq/cafe-tls", "where RabbitMQ reads cafe's TLS files (deploy/rabbitmq/rabbitmq.conf names them)")
	f.StringVar(&s.rabbitmqUser, "rabbitmq-user", "rabbitmq", "the user RabbitMQ runs as, who must read its key")
	f.BoolVar(&s.certsOnly, "certs-only", false, "only make the auth folder's certificates and copy them to the brokers")
	f.BoolVar(&s.rabbitmq, "rabbitmq", false, "also create RabbitMQ's users and permissions (needs rabbitmqctl)")
	f.StringVar(&s.rabbitmqNode, "rabbitmq-node", "", "with --rabbitmq: the node rabbitmqctl talks to (rabbitmqctl -n; users are cluster-wide, so one node of a cluster is enough; default: the local default node)")
	return cmd
}

func (s *setupSettings) run(out io.Writer) error {
	if s.rabbitmqNode != "" && !nodeName.MatchString(s.rabbitmqNode) {
		return fmt.Errorf("--rabbitmq-node %q: want an Erlang node name such as cafe-1@localhost (name@host, letters, digits, . _ -)", s.rabbitmqNode)
	}
	dir, err := local.Default()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(string(dir), 0o700); err != nil {
		return err
	}
	if err := s.tls(out, dir); err != nil || s.certsOnly {
		return err
	}
	key, err := dir.Key()
	if err != nil {
		return err
	}
	reg, err := s.registry(dir)
	if err != nil {
		return err
	}
	regFile := dir.Registry()
	uid, gid, err := owner(s.mosquittoUser)
	if err != nil {
		return err
	}
	if err := s.dynsec(out, reg, regFile, key, uid, gid); err != nil {
		return err
	}
	if s.rabbitmq {
		return setupRabbitMQ(out, key, rabbitmqNode(s.rabbitmqNode), filepath.Join(string(dir), appliedMarker(s.rabbitmqNode)))
	}
	return nil
}

// nodeName is what a RabbitMQ node name may look like (never an option
// rabbitmqctl would take for one of its own).
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}@[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$`)

// registry loads the registry, creating an empty one if there is none.
func (s *setupSettings) registry(dir local.Dir) (*registry.Registry, error) {
	file := dir.Registry()
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		if err := registry.Edit(file, func(*registry.Doc) error { return nil }); err != nil {
			return nil, err
		}
	}
	return registry.Load(file)
}

// owner is the uid and gid of a broker's user.
func owner(name string) (uid, gid int, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, 0, fmt.Errorf("user %s (a broker's): %w", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// tls makes the local CA and certificates and gives each broker its own.
func (s *setupSettings) tls(out io.Writer, dir local.Dir) error {
	ca := certs.Dir(dir.TLS())
	made, err := ca.Ensure("mqtt-server", "amqp-server", "cashier", "client")
	if err != nil {
		return fmt.Errorf("certificates in %s: %w", ca, err)
	}
	if len(made) > 0 {
		fmt.Fprintf(out, "setup: certificates made in %s: %v (CA %s)\n", ca, made, ca.CA())
	}
	if err := giveCert(ca, "mqtt-server", filepath.Join(s.mosquittoDir, "tls"), s.mosquittoUser); err != nil {
		return err
	}
	return giveCert(ca, "amqp-server", s.rabbitmqTLS, s.rabbitmqUser)
}

// giveCert copies the CA and the certificate called name with its key to
// dst, the key readable only by runAs (the broker, which reads it as itself).
func giveCert(ca certs.Dir, name, dst, runAs string) error {
	uid, gid, err := owner(runAs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, c := range []struct {
		from, to string
		mode     os.FileMode
	}{
		{ca.CA(), "ca.pem", 0o644},
		{ca.Cert(name), name + ".pem", 0o644},
		{ca.Key(name), name + "-key.pem", 0o600},
	} {
		if err := copyOwned(c.from, filepath.Join(dst, c.to), c.mode, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// dynsec writes the plugin's file when it is missing (or forced).
func (s *setupSettings) dynsec(out io.Writer, reg *registry.Registry, regFile string, key identity.Key, uid, gid int) error {
	if _, err := os.Stat(s.dynsecFile); err == nil && !s.forceDynsec {
		return nil // the broker owns it now; the reconciler keeps it current
	}
	if err := os.MkdirAll(filepath.Dir(s.dynsecFile), 0o755); err != nil {
		return err
	}
	if err := brokerauth.WriteFile(s.dynsecFile, reg, regFile, key, uid, gid); err != nil {
		return fmt.Errorf("write %s: %w", s.dynsecFile, err)
	}
	fmt.Fprintf(out, "setup: wrote Mosquitto's logins (%d apps, %d devices, the services) to %s\n", reg.Len(), len(reg.Devices()), s.dynsecFile)
	return nil
}

// copyOwned copies a file, mode and owner as given, if its content differs.
func copyOwned(from, to string, mode os.FileMode, uid, gid int) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(to); err == nil && string(old) == string(data) {
		return os.Chown(to, uid, gid)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}
