// Package certs makes the demo PKI of a one-machine installation: a local
// certificate authority and the certificates signed by it that the
// brokers and the cashier serve TLS with (`task certs`, `cafe setup`). In
// a real deployment certificates come from the operator's own PKI; cafe
// only needs the files (CAFE_*_CA_FILE, CAFE_*_CERT_FILE, CAFE_*_KEY_FILE).
//
//	ca.pem, ca-key.pem          the CA (ECDSA P-256, 10 years)
//	NAME.pem, NAME-key.pem      a certificate for 127.0.0.1, ::1 and localhost
//	                            (server and client use, 2 years)
//
// Existing files are kept: running it again changes nothing.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Dir is a folder of certificates.
type Dir string

// CA is the CA certificate's file.
func (d Dir) CA() string { return filepath.Join(string(d), "ca.pem") }

// Cert and Key are the files of the certificate called name.
func (d Dir) Cert(name string) string { return filepath.Join(string(d), name+".pem") }
func (d Dir) Key(name string) string  { return filepath.Join(string(d), name+"-key.pem") }

// Ensure makes the CA (if missing) and a certificate for each name that is
// missing, for the local hosts. It reports which names it made.
func (d Dir) Ensure(names ...string) (made []string, err error) {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return nil, err
	}
	ca, caKey, err := d.ensureCA()
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if exists(d.Cert(name)) && exists(d.Key(name)) {
			continue
		}
		if err := d.issue(name, ca, caKey); err != nil {
			return made, err
		}
		made = append(made, name)
	}
	return made, nil
}

func (d Dir) ensureCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	keyFile := filepath.Join(string(d), "ca-key.pem")
	if exists(d.CA()) && exists(keyFile) {
		return load(d.CA(), keyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cafe local CA", Organization: []string{"cafe"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	if err := write(d.CA(), keyFile, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func (d Dir) issue(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"cafe"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return write(d.Cert(name), d.Key(name), der, key)
}

func write(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func load(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, fmt.Errorf("%s or %s is not PEM: delete both to make a new CA", certFile, keyFile)
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	return cert, key, err
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return !errors.Is(err, os.ErrNotExist)
}
