package linktls_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"cafe/contracts/linktls"
)

// issuer is a throw-away CA.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newIssuer(t *testing.T) issuer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return issuer{cert, key}
}

// serve runs a TLS server on a free local port with a certificate for
// names, valid from notBefore to notAfter, and returns its address.
func (ca issuer) serve(t *testing.T, names []string, notBefore, notAfter time.Time) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"}, DNSNames: names,
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// Real handshakes that fail as a broker's can: each is explained with its
// own cause.
func TestExplainRealHandshakeFailures(t *testing.T) {
	ca := newIssuer(t)
	now := time.Now()
	for _, tc := range []struct {
		name, want          string
		names               []string
		notBefore, notAfter time.Time
		host                string
	}{
		{"name mismatch", "name_mismatch", []string{"broker.example"}, now.Add(-time.Hour), now.Add(time.Hour), "127.0.0.1"},
		{"expired", "expired", []string{"localhost"}, now.Add(-2 * time.Hour), now.Add(-time.Hour), "localhost"},
		{"not yet valid", "expired", []string{"localhost"}, now.Add(time.Hour), now.Add(2 * time.Hour), "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := ca.serve(t, tc.names, tc.notBefore, tc.notAfter)
			pool := x509.NewCertPool()
			pool.AddCert(ca.cert)
			_, port, _ := net.SplitHostPort(addr)
			_, err := tls.Dial("tcp", net.JoinHostPort(tc.host, port), &tls.Config{RootCAs: pool})
			c, ok := linktls.Explain(err, settings)
			if !ok || c.Kind != tc.want {
				t.Fatalf("%v explained as %+v, want %s", err, c, tc.want)
			}
		})
	}
}
