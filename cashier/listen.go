package cashier

import (
	"crypto/tls"
	"fmt"
	"net"

	"golang.org/x/net/netutil"
)

// listen binds the cashier's address, caps the connections it serves at
// once at MaxConns, and wraps them in TLS when a certificate is given. It
// returns the listener and its URL scheme.
//
// Past the cap, netutil.LimitListener stops accepting: a new connection
// waits in the kernel's accept queue (its TCP handshake done, nothing read)
// until a served one closes, and once that queue is full new connections
// are not taken at all. The cap counts every connection, TLS handshakes and
// /healthz, /readyz and /metrics included, so it also bounds the open files
// they use.
func listen(cfg Config) (net.Listener, string, error) {
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s: %w (set CAFE_HTTP_ADDR to a free address)", cfg.Addr, err)
	}
	ln = netutil.LimitListener(ln, cfg.MaxConns)
	if tlsCfg == nil {
		return ln, "http", nil
	}
	return tls.NewListener(ln, tlsCfg), "https", nil
}

// tlsConfig is the HTTPS configuration of CertFile and KeyFile, or nil
// for plain HTTP. The pair is loaded once, at start: a certificate renewed
// on disk takes effect when the cashier restarts.
//
// Only HTTP/1.1 is offered over TLS, as over plain TCP, so that bodies,
// their deadline and the connection cap behave the same on both.
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CertFile == "" && c.KeyFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, SettingCertFile.Errorf("%s and %s %s: %v; want a readable PEM certificate and its own private key",
			c.CertFile, SettingKeyFile, c.KeyFile, err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}
