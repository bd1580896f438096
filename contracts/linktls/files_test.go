package linktls_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
)

// settings are a link's: the errors and hints name them.
var settings = mqttlink.SettingsTLS

func write(t *testing.T, name, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLoadRefusesMalformedFiles(t *testing.T) {
	ca := read(t, brokertest.OtherCA(t))
	cert, key := brokertest.TLSFile("client.pem"), brokertest.TLSFile("client-key.pem")
	otherKey := brokertest.TLSFile("cashier-key.pem")
	for _, tc := range []struct {
		name  string
		files linktls.Files
		want  []string // in the error
	}{
		{"missing CA file", linktls.Files{CA: "/nonexistent/ca.pem"}, []string{"CAFE_MQTT_CA_FILE", "/nonexistent/ca.pem", "no such file", "PEM file of the CA"}},
		{"empty CA file", linktls.Files{CA: write(t, "empty.pem", "")}, []string{"CAFE_MQTT_CA_FILE", "no PEM certificate"}},
		{"CA not PEM", linktls.Files{CA: write(t, "junk.pem", "hello\x00\xff")}, []string{"CAFE_MQTT_CA_FILE", "no PEM certificate"}},
		{"a key as the CA", linktls.Files{CA: key}, []string{"CAFE_MQTT_CA_FILE", `"EC PRIVATE KEY", not a CERTIFICATE`}},
		{"CA with corrupt DER", linktls.Files{CA: write(t, "bad.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, []string{"CAFE_MQTT_CA_FILE", "PEM certificate 1"}},
		{"good CA then junk certificate", linktls.Files{CA: write(t, "two.pem", ca+"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}, []string{"PEM certificate 2"}},
		{"certificate without key", linktls.Files{Cert: cert}, []string{"CAFE_MQTT_CERT_FILE", "CAFE_MQTT_KEY_FILE", "both"}},
		{"key without certificate", linktls.Files{Key: key}, []string{"CAFE_MQTT_CERT_FILE", "CAFE_MQTT_KEY_FILE", "both"}},
		{"key of another certificate", linktls.Files{Cert: cert, Key: otherKey}, []string{"CAFE_MQTT_CERT_FILE", "private key does not match"}},
		{"certificate file not PEM", linktls.Files{Cert: write(t, "c.pem", strings.Repeat("x", 1<<16)), Key: key}, []string{"CAFE_MQTT_CERT_FILE", "want a PEM certificate"}},
		{"missing key file", linktls.Files{Cert: cert, Key: "/nonexistent/key.pem"}, []string{"CAFE_MQTT_KEY_FILE", "/nonexistent/key.pem"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tcfg, err := tc.files.Load(settings)
			if err == nil {
				t.Fatalf("loaded %+v", tcfg)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadReadsGoodFiles(t *testing.T) {
	if tc, err := (linktls.Files{}).Load(settings); tc != nil || err != nil {
		t.Fatalf("no files: got %v, %v; want nil, nil (the system's trust store)", tc, err)
	}
	tc, err := linktls.Files{CA: brokertest.CAFile(), Cert: brokertest.TLSFile("client.pem"), Key: brokertest.TLSFile("client-key.pem")}.Load(settings)
	if err != nil {
		t.Fatal(err)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Fatalf("got roots %v and %d certificates", tc.RootCAs, len(tc.Certificates))
	}
}

func TestExplainNamesCauseAndSetting(t *testing.T) {
	cert := &x509.Certificate{DNSNames: []string{"localhost"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1, 0)}
	for _, tc := range []struct {
		name, kind, hint string
		err              error
	}{
		{"unknown authority", "unknown_authority", "set CAFE_MQTT_CA_FILE", x509.UnknownAuthorityError{Cert: cert}},
		{"name mismatch", "name_mismatch", "reissue", x509.HostnameError{Certificate: cert, Host: "broker.example"}},
		{"expired", "expired", "renew", x509.CertificateInvalidError{Cert: cert, Reason: x509.Expired}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := linktls.Explain(&wrapped{tc.err}, settings)
			if !ok || c.Kind != tc.kind || !strings.Contains(c.Hint, tc.hint) {
				t.Fatalf("got %+v, %v; want kind %s with hint %q", c, ok, tc.kind, tc.hint)
			}
		})
	}
	if c, ok := linktls.Explain(errors.New("connection refused"), settings); ok {
		t.Fatalf("a refused connection explained as %+v", c)
	}
}

// wrapped is how the links' libraries hand errors on.
type wrapped struct{ err error }

func (w *wrapped) Error() string { return "dial: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func TestReporterLogsEachCauseOnce(t *testing.T) {
	var logs brokertest.Logs
	r := linktls.NewReporter(logs.Logger(), settings)
	ua := x509.UnknownAuthorityError{}
	for range 5 {
		if !r.Report(ua) {
			t.Fatal("an unknown authority is a cause")
		}
	}
	r.Report(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "h"})
	if r.Report(errors.New("eof")) {
		t.Fatal("a plain error is no cause")
	}
	if n := len(logs.With("cause", "unknown_authority")); n != 1 {
		t.Errorf("unknown authority logged %d times, want once", n)
	}
	if n := len(logs.With("cause", "name_mismatch")); n != 1 {
		t.Errorf("name mismatch logged %d times, want once", n)
	}
}
