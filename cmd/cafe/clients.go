package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// registryFlags are the settings every registry command shares.
type registryFlags struct {
	file string
	json bool
}

func (r *registryFlags) register(cmd *cobra.Command) {
	def := ""
	if d, err := local.Default(); err == nil {
		def = d.Registry()
	}
	f := cli.On(cmd.PersistentFlags())
	f.String(&r.file, cli.Setting("file", local.EnvRegistry), def, "the registry file (created if missing)")
	cmd.PersistentFlags().BoolVar(&r.json, "json", false, "print JSON (one object per line) instead of text")
}

// start applies the environment to the flags and checks the file is named.
func (r *registryFlags) start(cmd *cobra.Command) error {
	if err := cli.ApplyEnv(cmd.Flags()); err != nil {
		return err
	}
	if r.file == "" {
		return fmt.Errorf("no registry file: pass --file or set %s", local.EnvRegistry)
	}
	return nil
}

// afterChange tells the user when a registry change takes effect.
func afterChange(w io.Writer) {
	fmt.Fprintln(w, "the change takes effect within about 2 s wherever the registry is watched (cafe up, the cashier, cafe broker-auth); elsewhere send SIGHUP to the cashiers")
}

func clientsCommand() *cobra.Command {
	var r registryFlags
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Manage the apps in the registry (CAFE_CLIENTS_FILE): add, list, rotate, remove",
		Long: `clients manages the registry's apps. Each app has a client id (its results
topic is clients/{id}/results, and it is its MQTT user name and client id), a
bearer token (only its SHA-256 is stored) and the device patterns it may
command. An app gets its MQTT credentials from POST /v1/sessions with its
token.`,
	}
	r.register(cmd)
	cmd.AddCommand(clientsAddCommand(&r), clientsListCommand(&r), clientsRotateCommand(&r), removeCommand(&r, "clients"))
	return cmd
}

func clientsAddCommand(r *registryFlags) *cobra.Command {
	var (
		id      string
		devices []string
		rate    float64
		burst   int
	)
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add an app and print its new bearer token",
		Long: `add creates a bearer token for an app, stores only its SHA-256 in the registry
(creating the file if needed, keeping its comments), and prints the token
once: it is the last line of the output.`,
		Example: `  cafe clients add --id app-1 --devices 'lamp-*' --devices door-7
  cafe clients add --file clients.yaml --id dashboard --devices '*' --rate 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := r.start(cmd); err != nil {
				return err
			}
			token, err := addClient(r.file, id, devices, rate, burst)
			if err != nil {
				return err
			}
			return printSecret(cmd, r.json, "client", id, "token", token, "")
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the app's client id; its results go to clients/{id}/results")
	cmd.Flags().StringArrayVar(&devices, "devices", nil, "device id or glob pattern the app may command (repeatable)")
	cmd.Flags().Float64Var(&rate, "rate", 0, "commands per second the app may submit (0: the cashier's default, CAFE_CLIENT_RATE)")
	cmd.Flags().IntVar(&burst, "burst", 0, "commands at once above the rate (0: the rate)")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("devices")
	return cmd
}

// addClient adds a client to the registry file and returns its token.
func addClient(file, id string, devices []string, rate float64, burst int) (string, error) {
	token := newToken()
	err := registry.Edit(file, func(d *registry.Doc) error {
		return d.AddClient(id, identity.SHA256(token), devices, rate, burst)
	})
	return token, err
}

func clientsRotateCommand(r *registryFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate ID",
		Short: "Give an app a new bearer token (the old one stops working) and print it",
		Long: `rotate replaces an app's bearer token. The old token is refused once the
cashiers have the new registry, and the app's MQTT password (from
POST /v1/sessions) changes with it, so its MQTT connection is cut off.`,
		Example: "  cafe clients rotate app-1",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := r.start(cmd); err != nil {
				return err
			}
			token := newToken()
			if err := registry.Edit(r.file, func(d *registry.Doc) error { return d.SetClientToken(args[0], identity.SHA256(token)) }); err != nil {
				return err
			}
			return printSecret(cmd, r.json, "client", args[0], "token", token, "")
		},
	}
}

func clientsListCommand(r *registryFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the apps: id, device patterns, rate (never a token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := loadForList(cmd, r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if r.json {
				enc := json.NewEncoder(out)
				for _, c := range reg.Clients() {
					_ = enc.Encode(map[string]any{"id": c.ID, "devices": c.Patterns, "rate": c.Rate, "burst": c.Burst})
				}
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "CLIENT\tDEVICES\tRATE\tBURST")
			for _, c := range reg.Clients() {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.ID, strings.Join(c.Patterns, " "), orDefault(c.Rate), orDefault(float64(c.Burst)))
			}
			return w.Flush()
		},
	}
}

func orDefault(v float64) string {
	if v == 0 {
		return "default"
	}
	return fmt.Sprint(v)
}

// removeCommand removes apps or devices (list is "clients" or "devices").
func removeCommand(r *registryFlags, list string) *cobra.Command {
	what := strings.TrimSuffix(list, "s")
	return &cobra.Command{
		Use:   "remove ID...",
		Short: "Remove " + list + " from the registry; a connected one is cut off",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := r.start(cmd); err != nil {
				return err
			}
			err := registry.Edit(r.file, func(d *registry.Doc) error {
				for _, id := range args {
					if err := d.Remove(list, id); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s %s from %s\n", what, strings.Join(args, " "), r.file)
			afterChange(cmd.ErrOrStderr())
			return nil
		},
	}
}

func loadForList(cmd *cobra.Command, r *registryFlags) (*registry.Registry, error) {
	if err := r.start(cmd); err != nil {
		return nil, err
	}
	return registry.Load(r.file)
}

// printSecret prints a new secret: as JSON, or as text whose last line is
// the secret alone (so `cafe ... | tail -n 1` gets it).
func printSecret(cmd *cobra.Command, asJSON bool, kind, id, name, secret, how string) error {
	out := cmd.OutOrStdout()
	if asJSON {
		return json.NewEncoder(out).Encode(map[string]string{"kind": kind, "id": id, name: secret})
	}
	fmt.Fprintf(out, "%s %s: its %s (shown once, keep it secret)%s:\n%s\n", kind, id, name, how, secret)
	afterChange(cmd.ErrOrStderr())
	return nil
}

// newToken returns 32 random bytes, base64url: 43 characters.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
