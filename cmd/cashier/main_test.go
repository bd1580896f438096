package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every bad flag, variable or file is refused before anything connects,
// with an error that names what to fix.
func TestBadConfigurationIsRefusedClearly(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.yaml")
	if err := os.WriteFile(garbage, []byte("clients: {nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("clients:\n  - id: a\n    token_sha256: \""+strings.Repeat("a", 64)+"\"\n    devices: [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no registry", nil, nil, "CAFE_CLIENTS_FILE"},
		{"missing registry file", []string{"--clients-file", filepath.Join(dir, "none.yaml")}, nil, "none.yaml"},
		{"garbage registry", []string{"--clients-file", garbage}, nil, "garbage.yaml"},
		{"duration flag", []string{"--default-timeout", "banana"}, nil, "default-timeout"},
		{"int variable", nil, map[string]string{"CAFE_MAX_BATCH": "many"}, "CAFE_MAX_BATCH"},
		{"body limit over 1 MiB", []string{"--clients-file", good, "--max-body-bytes", "5000000"}, nil, "max body"},
		{"deadline beyond consumer timeout", []string{"--clients-file", good, "--max-timeout", "1h"}, nil, "max timeout"},
		{"amqp url", []string{"--clients-file", good, "--amqp-url", "http://localhost"}, nil, "amqp url"},
		{"prefix", []string{"--clients-file", good, "--amqp-prefix", "a b"}, nil, "prefix"},
		{"log level", []string{"--log-level", "loud"}, nil, "log level"},
		{"stray argument", []string{"serve"}, nil, "unknown command"},
		{"unknown flag", []string{"--colour"}, nil, "unknown flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			t.Setenv("CAFE_HTTP_ADDR", "127.0.0.1:0")
			cmd := command()
			cmd.SetArgs(tc.args)
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
