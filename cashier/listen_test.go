package cashier_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafe/cashier"
)

// tlsFiles writes the standard library's test certificate for 127.0.0.1
// (the one httptest serves) and its key to PEM files, and returns them
// with a pool that trusts the certificate.
func tlsFiles(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	ts.Close()
	pair := ts.TLS.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(pair.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cashier.pem"), filepath.Join(dir, "cashier-key.pem")
	writePEM(t, certFile, "CERTIFICATE", pair.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", key)
	pool = x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	return certFile, keyFile, pool
}

func writePEM(t *testing.T, file, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// newServerFor is a test cashier (see newServer) serving scheme, with the
// TLS configuration of a client that trusts it (nil for http).
func newServerFor(t *testing.T, scheme string, mutate ...func(*cashier.Config)) (*cashier.Server, *tls.Config) {
	t.Helper()
	if scheme == "http" {
		return newServer(t, &fakeQueue{}, mutate...), nil
	}
	certFile, keyFile, pool := tlsFiles(t)
	s := newServer(t, &fakeQueue{}, append(mutate, func(c *cashier.Config) { c.CertFile, c.KeyFile = certFile, keyFile })...)
	return s, &tls.Config{RootCAs: pool}
}

func TestHTTPS(t *testing.T) {
	q := &fakeQueue{}
	certFile, keyFile, pool := tlsFiles(t)
	s := newServer(t, q, func(c *cashier.Config) { c.CertFile, c.KeyFile = certFile, keyFile })
	serve(t, s)
	if s.Scheme() != "https" {
		t.Fatalf("scheme %q", s.Scheme())
	}
	base := "https://" + s.Addr().String()
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer trusting.CloseIdleConnections()

	res, err := trusting.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("healthz over HTTPS: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil {
		t.Fatalf("healthz over HTTPS: %d, TLS %v", res.StatusCode, res.TLS != nil)
	}
	// HTTP/1.1 only, even to a client that offers HTTP/2.
	conn, err := tls.Dial("tcp", s.Addr().String(), &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
		t.Fatalf("negotiated %q, want http/1.1", p)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/devices/lamp-1/commands", strings.NewReader(one))
	req.Header.Set("Authorization", "Bearer "+tokenApp1)
	if res, err = trusting.Do(req); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 || len(q.published()) != 1 {
		t.Fatalf("command over HTTPS: %d, published %d", res.StatusCode, len(q.published()))
	}

	// A client that does not trust the certificate's issuer gets a TLS
	// error that says so.
	plain := &http.Client{Transport: &http.Transport{}}
	_, err = plain.Get(base + "/healthz")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("without the CA: %v, want an unknown-authority error", err)
	}
	// Plain HTTP to the HTTPS port is told what it did.
	res, err = plain.Get("http://" + s.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 400 || !strings.Contains(string(out), "HTTPS") {
		t.Fatalf("plain HTTP to the HTTPS port: %d %s", res.StatusCode, out)
	}
}

func TestNewRefusesUnusableCertificates(t *testing.T) {
	certFile, keyFile, _ := tlsFiles(t)
	dir := t.TempDir()
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	wrongKey := filepath.Join(dir, "other-key.pem")
	writePEM(t, wrongKey, "PRIVATE KEY", der)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing certificate", missing, keyFile, "no such file"},
		{"missing key", certFile, missing, "no such file"},
		{"key of another certificate", certFile, wrongKey, "does not match"},
		{"not PEM", garbage, keyFile, "PEM"},
		{"certificate and key swapped", keyFile, certFile, "PEM"},
		{"a directory", dir, keyFile, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cashier.Defaults()
			cfg.Addr, cfg.CertFile, cfg.KeyFile = "127.0.0.1:0", tc.cert, tc.key
			_, err := newCashier(t, cfg, &fakeQueue{})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range []string{tc.want, cashier.SettingCertFile.Env, cashier.SettingKeyFile.Env, tc.cert} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// Past MaxConns, a new connection waits unserved until a served one
// closes; the gauge shows the open ones.
func TestConnectionCap(t *testing.T) {
	s := newServer(t, &fakeQueue{}, func(c *cashier.Config) { c.MaxConns, c.BodyTimeout = 2, time.Minute })
	serve(t, s)
	var held []*rawClient
	for range 2 {
		c := dialRaw(t, s, nil)
		if _, err := io.WriteString(c, head(tokenApp1, "Content-Length: 1000\r\n")+"{"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waiting := dialRaw(t, s, nil) // the kernel completes the handshake; the cashier does not accept it
	if _, err := io.WriteString(waiting, "GET /healthz HTTP/1.1\r\nHost: cafe\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = waiting.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := waiting.r.Peek(1); err == nil {
		t.Fatal("a third connection was served with MaxConns 2")
	}
	if got := metric(t, s, "cafe_cashier_http_connections"); got != "2" {
		t.Errorf("cafe_cashier_http_connections %s, want 2", got)
	}
	held[0].Close()
	if res, out := waiting.answer(t); res.StatusCode != 200 {
		t.Fatalf("the waiting connection, once one closed: %d %s", res.StatusCode, out)
	}
}

// metric is the value of an unlabelled metric on s's /metrics.
func metric(t *testing.T, s *cashier.Server, name string) string {
	t.Helper()
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(w.Body.String()) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}
