package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/run"
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
	clitest.ExpectRefused(t, run.CashierCommand, []clitest.Case{
		{Name: "no registry", Want: "CAFE_CLIENTS_FILE"},
		{Name: "missing registry file", Args: []string{"--clients-file", filepath.Join(dir, "none.yaml")}, Want: "none.yaml"},
		{Name: "garbage registry", Args: []string{"--clients-file", garbage}, Want: "garbage.yaml"},
		{Name: "duration flag", Args: []string{"--default-timeout", "banana"}, Want: "default-timeout"},
		{Name: "int variable", Env: map[string]string{"CAFE_MAX_BATCH": "many"}, Want: "CAFE_MAX_BATCH"},
		{Name: "body limit over 1 MiB", Args: []string{"--clients-file", good, "--max-body-bytes", "5000000"}, Want: "CAFE_MAX_BODY_BYTES"},
		{Name: "deadline beyond consumer timeout", Args: []string{"--clients-file", good, "--max-timeout", "1h"}, Want: "CAFE_MAX_TIMEOUT"},
		{Name: "amqp url", Args: []string{"--clients-file", good, "--amqp-url", "http://localhost"}, Want: "CAFE_AMQP_URL"},
		{Name: "prefix", Args: []string{"--clients-file", good, "--amqp-prefix", "a b"}, Want: "CAFE_AMQP_PREFIX"},
		{Name: "body timeout garbage", Args: []string{"--body-timeout", "soon"}, Want: "body-timeout"},
		{Name: "negative body timeout", Args: []string{"--clients-file", good, "--body-timeout", "-1s"}, Want: "CAFE_BODY_TIMEOUT"},
		{Name: "negative max conns", Env: map[string]string{"CAFE_CLIENTS_FILE": good, "CAFE_MAX_CONNS": "-5"}, Want: "CAFE_MAX_CONNS"},
		{Name: "log level", Args: []string{"--log-level", "loud"}, Want: "log level"},
		{Name: "stray argument", Args: []string{"serve"}, Want: "unknown command"},
		{Name: "unknown flag", Args: []string{"--colour"}, Want: "unknown flag"},
	})
}
