package linktls

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"cafe/contracts"
)

// Files are the PEM files of one link's TLS.
type Files struct {
	CA   string // certificates the broker's must chain to; empty: the system's trust store
	Cert string // client certificate, optional; with Key
	Key  string // the client certificate's private key
}

// Settings name the Files of one link for operators.
type Settings struct{ CA, Cert, Key contracts.Setting }

// Set reports whether any file is given.
func (f Files) Set() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

// Load reads the files into a TLS client configuration. With no files it
// returns nil: the link's library uses the system's trust store.
func (f Files) Load(s Settings) (*tls.Config, error) {
	if !f.Set() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pool, err := loadCA(f.CA)
		if err != nil {
			return nil, s.CA.Errorf("%s: %v; want a readable PEM file of the CA that signed the broker's certificate (cafe setup makes ~/.config/cafe/tls/ca.pem)", f.CA, err)
		}
		tc.RootCAs = pool
	}
	if f.Cert == "" && f.Key == "" {
		return tc, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, fmt.Errorf("%s and %s go together: give both the client certificate and its key, or neither", s.Cert, s.Key)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, s.Cert.Errorf("%s with key %s (%s): %v; want a PEM certificate and the PEM private key that belongs to it", f.Cert, f.Key, s.Key, err)
	}
	tc.Certificates = []tls.Certificate{pair}
	return tc, nil
}

// SystemPlus is the system's trust store with the certificates of the PEM
// file added: for HTTPS clients that must also reach servers of a real PKI.
func SystemPlus(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	return pool, AddCA(pool, file)
}

// loadCA reads a file of PEM certificates into a pool of their own.
func loadCA(file string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	return pool, AddCA(pool, file)
}

// AddCA adds the certificates of a PEM file to pool; the file must hold at
// least one and every one must parse.
func AddCA(pool *x509.CertPool, file string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	return addPEM(pool, data)
}

func addPEM(pool *x509.CertPool, data []byte) error {
	for n := 0; ; n++ {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			if n == 0 {
				return errors.New("no PEM certificate in it")
			}
			return nil
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %q, not a CERTIFICATE", n+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return fmt.Errorf("PEM certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
	}
}
