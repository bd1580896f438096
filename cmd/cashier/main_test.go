package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"cafe/cmd/internal/certs"
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
	good := registryFile(t, dir)
	tlsDir := demoCerts(t, "cashier", "other")
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
		{Name: "certificate without key", Args: []string{"--clients-file", good, "--http-cert-file", tlsDir.Cert("cashier")}, Want: "CAFE_HTTP_KEY_FILE) is empty"},
		{Name: "key without certificate", Env: map[string]string{"CAFE_CLIENTS_FILE": good, "CAFE_HTTP_KEY_FILE": tlsDir.Key("cashier")}, Want: "CAFE_HTTP_CERT_FILE) is empty"},
		{Name: "missing certificate", Args: []string{"--clients-file", good, "--http-cert-file", filepath.Join(dir, "none.pem"), "--http-key-file", tlsDir.Key("cashier")}, Want: "none.pem: no such file"},
		{Name: "key of another certificate", Args: []string{"--clients-file", good, "--http-cert-file", tlsDir.Cert("cashier"), "--http-key-file", tlsDir.Key("other")}, Want: "private key does not match"},
		{Name: "log level", Args: []string{"--log-level", "loud"}, Want: "log level"},
		{Name: "stray argument", Args: []string{"serve"}, Want: "unknown command"},
		{Name: "unknown flag", Args: []string{"--colour"}, Want: "unknown flag"},
	})
}

// registryFile writes a registry with one client, who may command every
// device, to dir.
func registryFile(t *testing.T, dir string) string {
	t.Helper()
	file := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(file, []byte("clients:\n  - id: a\n    token_sha256: \""+strings.Repeat("a", 64)+"\"\n    devices: [\"*\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// demoCerts makes the demo PKI (a local CA and the named certificates) in
// a directory of the test's own.
func demoCerts(t *testing.T, names ...string) certs.Dir {
	t.Helper()
	d := certs.Dir(filepath.Join(t.TempDir(), "tls"))
	if _, err := d.Ensure(names...); err != nil {
		t.Fatal(err)
	}
	return d
}

// The binary serves HTTPS with the demo PKI's cashier certificate: a client
// that trusts the local CA gets its answer, one that does not gets a TLS
// error saying so.
func TestBinaryServesHTTPS(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "cashier")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	pki := demoCerts(t, "cashier")
	cmd := exec.CommandContext(t.Context(), bin) // killed if the test ends before it exits
	cmd.Env = append(os.Environ(),
		"CAFE_CONFIG_DIR="+dir, // no machine auth key: nothing of this machine's installation is used
		"CAFE_CLIENTS_FILE="+registryFile(t, dir),
		"CAFE_HTTP_ADDR=127.0.0.1:0",
		"CAFE_AMQP_URL=amqp://guest:guest@127.0.0.1:1/", // no broker: the cashier serves health without one
		"CAFE_HTTP_CERT_FILE="+pki.Cert("cashier"),
		"CAFE_HTTP_KEY_FILE="+pki.Key("cashier"),
	)
	logFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	stderr := func() string { b, _ := os.ReadFile(logFile.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var exitErr error
	exited := make(chan struct{})
	go func() { exitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { <-exited })
	listening := regexp.MustCompile(`msg="cashier listening".* addr=(\S+) scheme=https`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := listening.FindStringSubmatch(stderr()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("never logged that it listens with scheme=https:\n%s", stderr())
		}
	}

	caPEM, err := os.ReadFile(pki.CA())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := trusting.Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz with the local CA: %v", err)
	}
	res.Body.Close()
	trusting.CloseIdleConnections()
	if res.StatusCode != 200 {
		t.Fatalf("healthz with the local CA: %d", res.StatusCode)
	}
	_, err = (&http.Client{Transport: &http.Transport{}}).Get("https://" + addr + "/healthz")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("healthz without the local CA: %v, want an unknown-authority error", err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if exitErr != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", exitErr, stderr())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20s after SIGTERM")
	}
}
