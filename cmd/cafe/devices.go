package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// deviceFlags are the registry settings plus the auth key that device
// secrets are derived from.
type deviceFlags struct {
	registryFlags
	keyFile string
}

func (d *deviceFlags) register(cmd *cobra.Command) {
	d.registryFlags.register(cmd)
	def := ""
	if dir, err := local.Default(); err == nil {
		def = dir.KeyFile()
	}
	cli.On(cmd.PersistentFlags()).String(&d.keyFile, cli.Setting("auth-key-file", local.EnvKey), def, "the auth key device secrets are derived from (created if missing)")
}

func (d *deviceFlags) key() (identity.Key, error) {
	k, _, err := identity.EnsureKey(d.keyFile)
	return k, err
}

func devicesCommand() *cobra.Command {
	var d deviceFlags
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "Manage the devices in the registry: add, list, rotate, remove",
		Long: `devices manages the registry's devices. A device connects to MQTT with user
name and client id = its device id and password = its secret. The registry
keeps only the secret's SHA-256 and a generation; the secret itself is
derived from the auth key (CAFE_AUTH_KEY_FILE), so the MQTT broker can be
told it again at any time. Rotating a device counts its generation up: its
old secret stops working and a connected device is cut off.

A command to a device that is not registered is refused by the cashier
(404); the broker refuses a device that is not registered.`,
	}
	d.register(cmd)
	cmd.AddCommand(devicesAddCommand(&d), devicesListCommand(&d), devicesRotateCommand(&d), removeCommand(&d.registryFlags, "devices"))
	return cmd
}

func devicesAddCommand(d *deviceFlags) *cobra.Command {
	var n numbered
	cmd := &cobra.Command{
		Use:   "add ID... | add --count N [--pattern P] [--first F]",
		Short: "Register devices and print their secrets",
		Long: `add registers devices and prints each one's secret once. With one device the
last line of the output is its secret; with several, each line is
"ID SECRET" (--json: one object per line).`,
		Example: `  cafe devices add lamp-1
  cafe devices add lamp-1 lamp-2 door-7
  cafe devices add --count 100 --pattern 'sim-%d' --json > fleet.jsonl`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := n.ids(args)
			if err != nil {
				return err
			}
			return d.apply(cmd, ids, func(doc *registry.Doc, id string, gen int, secret string) error {
				return doc.AddDevice(id, identity.SHA256(secret), gen)
			}, func(*registry.Registry, string) int { return 1 })
		},
	}
	n.register(cmd)
	return cmd
}

func devicesRotateCommand(d *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rotate ID...",
		Short:   "Give devices new secrets (the old ones stop working; connected devices are cut off) and print them",
		Example: "  cafe devices rotate lamp-1",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return d.apply(cmd, args, func(doc *registry.Doc, id string, gen int, secret string) error {
				return doc.SetDevice(id, identity.SHA256(secret), gen)
			}, func(reg *registry.Registry, id string) int {
				if dev, ok := reg.Device(id); ok {
					return dev.Generation + 1
				}
				return 1 // SetDevice then says the device is not registered
			})
		},
	}
}

// apply edits the registry for every id with the secret of the generation
// gen gives it, then prints the secrets.
func (d *deviceFlags) apply(cmd *cobra.Command, ids []string, edit func(*registry.Doc, string, int, string) error, gen func(*registry.Registry, string) int) error {
	if err := d.start(cmd); err != nil {
		return err
	}
	key, err := d.key()
	if err != nil {
		return err
	}
	secrets := make([]string, len(ids))
	err = registry.Edit(d.file, func(doc *registry.Doc) error {
		current, _ := registry.Load(d.file) // nil for a file that does not exist yet
		for i, id := range ids {
			g := 1
			if current != nil {
				g = gen(current, id)
			}
			secrets[i] = key.DeviceSecret(id, g)
			if err := edit(doc, id, g, secrets[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return printSecrets(cmd, d.json, ids, secrets)
}

func printSecrets(cmd *cobra.Command, asJSON bool, ids, secrets []string) error {
	if len(ids) == 1 {
		return printSecret(cmd, asJSON, "device", ids[0], "secret", secrets[0], "; connect with user name and client id "+ids[0])
	}
	out := cmd.OutOrStdout()
	enc := json.NewEncoder(out)
	for i, id := range ids {
		if asJSON {
			_ = enc.Encode(map[string]string{"kind": "device", "id": id, "secret": secrets[i]})
		} else {
			fmt.Fprintf(out, "%s %s\n", id, secrets[i])
		}
	}
	afterChange(cmd.ErrOrStderr())
	return nil
}

func devicesListCommand(d *deviceFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the registered devices and their generation (never a secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := loadForList(cmd, &d.registryFlags)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if d.json {
				enc := json.NewEncoder(out)
				for _, dev := range reg.Devices() {
					_ = enc.Encode(map[string]any{"id": dev.ID, "generation": dev.Generation})
				}
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "DEVICE\tGENERATION")
			for _, dev := range reg.Devices() {
				fmt.Fprintf(w, "%s\t%d\n", dev.ID, dev.Generation)
			}
			return w.Flush()
		},
	}
}

// numbered is how devices add names many devices at once.
type numbered struct {
	count, first int
	pattern      string
}

func (n *numbered) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&n.count, "count", 0, "register this many devices named by --pattern")
	cmd.Flags().StringVar(&n.pattern, "pattern", "sim-%d", "printf pattern of the ids with --count, numbered from --first")
	cmd.Flags().IntVar(&n.first, "first", 1, "number of the first device with --count")
}

// ids are the ids named on the command line, or made by --count.
func (n numbered) ids(args []string) ([]string, error) {
	switch {
	case n.count < 0:
		return nil, fmt.Errorf("--count %d: want 1 or more", n.count)
	case n.count > 0 && len(args) > 0:
		return nil, errors.New("give device ids or --count, not both")
	case n.count == 0 && len(args) == 0:
		return nil, errors.New("give the ids of the devices to add (or --count N --pattern 'sim-%d')")
	case n.count == 0:
		return args, nil
	}
	ids := make([]string, n.count)
	for i := range ids {
		ids[i] = fmt.Sprintf(n.pattern, n.first+i)
	}
	return ids, nil
}

// temporaryDevices registers devices in the registry file for as long as
// a tool needs them (cafe bench's fleet), secrets derived from the local
// auth key; unregister removes them again.
func temporaryDevices(file string) func(ids []string) (func(string) string, func() error, error) {
	return func(ids []string) (func(string) string, func() error, error) {
		key, err := local.MachineKey()
		if err != nil {
			return nil, nil, err
		}
		secrets, err := registry.EnsureDevices(file, key, ids)
		if err != nil {
			return nil, nil, err
		}
		unregister := func() error { return registry.RemoveDevices(file, ids) }
		return func(id string) string { return secrets[id] }, unregister, nil
	}
}
