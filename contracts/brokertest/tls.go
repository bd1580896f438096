package brokertest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// MQTTTLSURLAs is the tests' Mosquitto TLS listener ($CAFE_TEST_MQTTS_URL
// or ssl://127.0.0.1:8883), logged in as service s.
func MQTTTLSURLAs(s identity.Service) string {
	return as(MQTTTLSBase(), string(s), Key().ServicePassword(s))
}

// MQTTTLSBase is the tests' Mosquitto TLS listener without credentials.
func MQTTTLSBase() string { return envOr("CAFE_TEST_MQTTS_URL", "ssl://127.0.0.1:8883") }

// AMQPTLSURLAs is the tests' RabbitMQ TLS listener ($CAFE_TEST_AMQPS_URL
// or amqps://127.0.0.1:5671/), logged in as service s.
func AMQPTLSURLAs(s identity.Service) string {
	return as(AMQPTLSBase(), string(s), Key().ServicePassword(s))
}

// AMQPTLSBase is the tests' RabbitMQ TLS listener without credentials.
func AMQPTLSBase() string { return envOr("CAFE_TEST_AMQPS_URL", "amqps://127.0.0.1:5671/") }

// CAFile is the local CA that `cafe setup` made and signed the brokers'
// certificates with.
func CAFile() string {
	dir, err := local.Default()
	if err != nil {
		panic("no installation folder: " + err.Error())
	}
	return filepath.Join(dir.TLS(), "ca.pem")
}

// TLSFile is a file of the local CA's folder (client.pem, client-key.pem).
func TLSFile(name string) string { return filepath.Join(filepath.Dir(CAFile()), name) }

// OtherCA writes the certificate of a freshly made CA that signed nothing
// the brokers serve, and returns its file: a "wrong CA" for a client.
func OtherCA(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "not cafe's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Logs is a logger whose records a test can read back.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a JSON logger writing to l at every level.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// With returns the records that have key set to value.
func (l *Logs) With(key, value string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.buf.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec[key] == value {
			out = append(out, rec)
		}
	}
	return out
}

// retriesAfterCause is how many more failed attempts LoggedOnce waits for
// after the first record of a cause: each is a chance to log it again.
const retriesAfterCause = 3

// LoggedOnce waits until logs hold a record with cause, and then until the
// link has failed retriesAfterCause more times with it (each repeat is a
// debug record "again": cause, linktls.Reporter), then fails the test
// unless exactly one record with cause was logged, with a hint that names
// hint.
func LoggedOnce(t testing.TB, logs *Logs, cause, hint string) {
	t.Helper()
	Eventually(t, 10*time.Second, "the "+cause+" cause logged", func() bool { return len(logs.With("cause", cause)) > 0 })
	Eventually(t, 20*time.Second, fmt.Sprintf("the link did not fail %d more times with %s", retriesAfterCause, cause), func() bool {
		return len(logs.With("again", cause)) >= retriesAfterCause
	})
	recs := logs.With("cause", cause)
	if len(recs) != 1 {
		t.Fatalf("%s logged %d times, want once", cause, len(recs))
	}
	if h, _ := recs[0]["hint"].(string); !strings.Contains(h, hint) {
		t.Errorf("hint %q does not name %s", h, hint)
	}
}
