package main

import (
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
)

func credentialsCommand() *cobra.Command {
	var (
		password         bool
		amqpURL, mqttURL string
	)
	cmd := &cobra.Command{
		Use:   "credentials ROLE",
		Short: "Print a service's broker credentials (derived from the auth key), to run it on its own",
		Long: `credentials prints what one of cafe's services logs in to the brokers with:
the broker URLs with its user name and password, as environment variables.
Each role has its own identity (cafe-cashier, cafe-barista, cafe-caller,
cafe-ledger, cafe-ops, cafe-admin), its password derived from the auth key
(CAFE_AUTH_KEY_FILE). Give a service only its own credentials, never the key.

"credentials session-key" prints the cashier's session key instead (hex),
the key app MQTT passwords are derived from: write it to the file
CAFE_SESSION_KEY_FILE names, readable by the cashier alone.`,
		Example: `  eval "$(cafe credentials barista)" && barista
  cafe credentials cafe-caller --password
  (umask 077; cafe credentials session-key > /etc/cafe/session.key)`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: serviceNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			return printCredentials(cmd.OutOrStdout(), args[0], password, amqpURL, mqttURL)
		},
	}
	f := cli.On(cmd.Flags())
	f.String(&amqpURL, amqplink.SettingURL, amqplink.DefaultURL, "RabbitMQ URL to put the credentials in")
	f.String(&mqttURL, mqttlink.SettingURL, mqttlink.DefaultURL, "MQTT broker URL to put the credentials in")
	cmd.Flags().BoolVar(&password, "password", false, "print only the password")
	return cmd
}

// printCredentials prints what credentials says, for the role (or
// session-key) named what.
func printCredentials(w io.Writer, what string, passwordOnly bool, amqpURL, mqttURL string) error {
	key, err := local.ReadKey()
	if err != nil {
		return err
	}
	if what == sessionKeyArg {
		fmt.Fprintln(w, key.SessionKey().Hex())
		return nil
	}
	role, err := parseRole(what)
	if err != nil {
		return err
	}
	pw := key.ServicePassword(role)
	if passwordOnly {
		fmt.Fprintln(w, pw)
		return nil
	}
	for _, v := range []struct{ env, raw string }{{amqplink.SettingURL.Env, amqpURL}, {mqttlink.SettingURL.Env, mqttURL}} {
		u, err := url.Parse(v.raw)
		if err != nil {
			return fmt.Errorf("%s %q: %w", v.env, v.raw, err)
		}
		u.User = url.UserPassword(string(role), pw)
		fmt.Fprintf(w, "export %s='%s'\n", v.env, u.String())
	}
	return nil
}

// sessionKeyArg asks credentials for the cashier's session key.
const sessionKeyArg = "session-key"

func serviceNames() []string {
	out := []string{sessionKeyArg}
	for _, s := range identity.Services {
		out = append(out, string(s), strings.TrimPrefix(string(s), "cafe-"))
	}
	return out
}

// parseRole accepts a service's name with or without its cafe- prefix.
func parseRole(name string) (identity.Service, error) {
	s := identity.Service(name)
	if !strings.HasPrefix(name, "cafe-") {
		s = identity.Service("cafe-" + name)
	}
	if !slices.Contains(identity.Services, s) {
		return "", fmt.Errorf("no role %q: want one of %s", name, strings.Join(serviceNames(), ", "))
	}
	return s, nil
}
