package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// operatorsCommand manages the people who may log in to the console. They
// live in the registry's operators: list, with only their token's SHA-256,
// like apps; they have no broker login.
func operatorsCommand() *cobra.Command {
	var r registryFlags
	cmd := &cobra.Command{
		Use:   "operators",
		Short: "Manage who may log in to the web console (cafe console): add, list, remove",
		Long: `operators manages the registry's console operators. Each has an id (shown in
the console and in the audit file of replays and purges) and a login token
(only its SHA-256 is stored). Operators have no broker login; the console
acts on the brokers as cafe-ops. A removed operator's sessions end at their
next request.`,
	}
	r.register(cmd)
	cmd.AddCommand(operatorsAddCommand(&r), operatorsListCommand(&r), removeCommand(&r, "operators"))
	return cmd
}

func operatorsAddCommand(r *registryFlags) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use:     "add",
		Short:   "Add an operator and print their console login token",
		Long:    "add creates a login token for an operator, stores only its SHA-256 in the registry and prints the token once: it is the last line of the output.",
		Example: "  cafe operators add --id alice",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := r.start(cmd); err != nil {
				return err
			}
			token := newToken()
			if err := registry.Edit(r.file, func(d *registry.Doc) error { return d.AddOperator(id, identity.SHA256(token)) }); err != nil {
				return err
			}
			return printSecret(cmd, r.json, "operator", id, "token", token, "")
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "the operator's id (A-Z a-z 0-9 . _ : -)")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func operatorsListCommand(r *registryFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the operators (never a token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reg, err := loadForList(cmd, r)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, o := range reg.Operators() {
				if r.json {
					_ = json.NewEncoder(out).Encode(map[string]string{"id": o.ID})
					continue
				}
				fmt.Fprintln(out, o.ID)
			}
			return nil
		},
	}
}
