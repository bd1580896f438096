package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"cafe/cashier"
	"cafe/cmd/internal/cli"
)

func clientsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clients",
		Short: "Manage the client registry (CAFE_CLIENTS_FILE)",
	}
	cmd.AddCommand(clientsAddCommand())
	return cmd
}

func clientsAddCommand() *cobra.Command {
	var (
		file    string
		id      string
		devices []string
		rate    float64
		burst   int
	)
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add an app to the client registry and print its new bearer token",
		Long: `add creates a bearer token for an app, stores only its SHA-256 in the client
registry (creating the file if needed, keeping its comments), and prints the
token once. Running cashiers load the change on SIGHUP.`,
		Example: `  cafe clients add --file clients.yaml --id app-1 --devices 'lamp-*' --devices door-7
  CAFE_CLIENTS_FILE=clients.yaml cafe clients add --id dashboard --devices '*' --rate 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			if file == "" {
				return errors.New("no registry file: pass --file or set CAFE_CLIENTS_FILE")
			}
			token, err := addClient(file, id, devices, rate, burst)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added client %s to %s\ntoken (shown once, keep it secret):\n%s\n", id, file, token)
			fmt.Fprintf(cmd.ErrOrStderr(), "running cashiers pick it up on SIGHUP: pkill -HUP cashier\n")
			return nil
		},
	}
	f := cli.On(cmd.Flags())
	f.String(&file, cli.Setting("file", "CAFE_CLIENTS_FILE"), "", "client registry to add to (created if missing)")
	cmd.Flags().StringVar(&id, "id", "", "the app's client id; its results go to clients/{id}/results")
	cmd.Flags().StringArrayVar(&devices, "devices", nil, "device id or glob pattern the app may command (repeatable)")
	cmd.Flags().Float64Var(&rate, "rate", 0, "commands per second the app may submit (0: no limit)")
	cmd.Flags().IntVar(&burst, "burst", 0, "commands at once above the rate (0: the rate)")
	_ = cmd.MarkFlagRequired("id")
	_ = cmd.MarkFlagRequired("devices")
	return cmd
}

// newToken returns 32 random bytes, base64url: 43 characters.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// addClient appends a client to the registry file and returns its token.
// The result is validated as a whole before it replaces the file.
func addClient(file, id string, devices []string, rate float64, burst int) (string, error) {
	var doc yaml.Node
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data = []byte("# cafe client registry: one entry per app (see `cafe clients add --help`).\nclients: []\n")
	case err != nil:
		return "", err
	}
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", fmt.Errorf("%s is not a client registry (want a YAML mapping with a clients: list): %v", file, err)
	}
	clients := lookup(doc.Content[0], "clients")
	if clients == nil {
		return "", fmt.Errorf("%s has no clients: list", file)
	}
	if clients.Kind != yaml.SequenceNode {
		return "", fmt.Errorf("%s: clients is not a list", file)
	}
	clients.Style = 0 // block style, also for a file that started as clients: []
	token := newToken()
	sum := sha256.Sum256([]byte(token))
	entry := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v *yaml.Node) { entry.Content = append(entry.Content, scalar(k), v) }
	add("id", quoted(id))
	add("token_sha256", quoted(hex.EncodeToString(sum[:])))
	list := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, d := range devices {
		list.Content = append(list.Content, quoted(d))
	}
	add("devices", list)
	if rate > 0 {
		add("rate", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(rate, 'g', -1, 64)})
	}
	if burst > 0 {
		add("burst", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(burst)})
	}
	clients.Content = append(clients.Content, entry)

	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", err
	}
	if _, err := cashier.ParseRegistry(out.Bytes()); err != nil {
		return "", fmt.Errorf("the registry would not be valid with this client: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, out.Bytes(), 0o600); err != nil {
		return "", err
	}
	return token, os.Rename(tmp, file)
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func quoted(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v, Style: yaml.DoubleQuotedStyle}
}
