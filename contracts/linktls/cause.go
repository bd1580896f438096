package linktls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
)

// Cause is why a TLS connection to a broker failed, for an operator.
type Cause struct {
	Kind   string // unknown_authority, name_mismatch, expired, invalid, refused_by_broker, not_tls
	Detail string // what was found (the issuer, the names, the dates)
	Hint   string // what to do
}

// Explain returns the Cause of err, or false when err is not a TLS
// certificate or handshake failure.
func Explain(err error, s Settings) (Cause, bool) {
	var (
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		ae  tls.AlertError
		oe  *net.OpError
		rhe tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &ua):
		return Cause{"unknown_authority", issuer(ua.Cert),
			fmt.Sprintf("set %s to the CA that signed the broker's certificate", s.CA.Env)}, true
	case errors.As(err, &he):
		return Cause{"name_mismatch", fmt.Sprintf("the certificate is not for %q: %s", he.Host, names(he.Certificate)),
			"connect by a name the broker's certificate carries, or reissue the certificate for this host"}, true
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return Cause{"expired", validity(ci.Cert),
			"renew the broker's certificate, or check this machine's clock"}, true
	case errors.As(err, &ci):
		return Cause{"invalid", ci.Error(), "reissue the broker's certificate for server use, signed by a CA"}, true
	case errors.As(err, &ae):
		return refused(ae.Error(), s), true
	case errors.As(err, &oe) && oe.Op == "remote error": // an alert the broker sent
		return refused(oe.Err.Error(), s), true
	case errors.As(err, &rhe):
		return Cause{"not_tls", "the broker's port answered without TLS",
			"use the broker's TLS port, or a plain URL (tcp://, amqp://) for a plain port"}, true
	}
	return Cause{}, false
}

// refused is the Cause of a TLS alert from the broker: mostly a client
// certificate it did not accept (or none, when it requires one).
func refused(alert string, s Settings) Cause {
	return Cause{"refused_by_broker", "the broker sent TLS alert: " + alert,
		fmt.Sprintf("set %s and %s to a client certificate signed by a CA the broker trusts", s.Cert.Env, s.Key.Env)}
}

// Conn returns c with every read error reported: in TLS 1.3 a broker
// refuses a client certificate after the client's handshake is done, so
// its alert arrives on the first read.
func (r *Reporter) Conn(c net.Conn) net.Conn { return readReporter{c, r} }

type readReporter struct {
	net.Conn
	r *Reporter
}

func (c readReporter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.r.Report(err)
	}
	return n, err
}

func issuer(c *x509.Certificate) string {
	if c == nil {
		return "issuer unknown"
	}
	return "the broker's certificate is signed by " + c.Issuer.String()
}

func names(c *x509.Certificate) string {
	if c == nil {
		return "no certificate"
	}
	var n []string
	n = append(n, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	return "it names " + strings.Join(n, ", ")
}

func validity(c *x509.Certificate) string {
	if c == nil {
		return "outside its validity"
	}
	return fmt.Sprintf("valid from %s to %s", c.NotBefore.UTC().Format("2006-01-02T15:04Z"), c.NotAfter.UTC().Format("2006-01-02T15:04Z"))
}

// Reporter logs each distinct Cause of one link once.
type Reporter struct {
	log      *slog.Logger
	settings Settings
	mu       sync.Mutex
	seen     map[Cause]bool
}

// NewReporter returns a Reporter logging to log.
func NewReporter(log *slog.Logger, s Settings) *Reporter {
	return &Reporter{log: log, settings: s, seen: map[Cause]bool{}}
}

// Report logs err's Cause if it has one not seen before; it reports
// whether err has a Cause (logged now or earlier), so that the caller can
// leave out its own, less helpful, message.
func (r *Reporter) Report(err error) bool {
	c, ok := Explain(err, r.settings)
	if !ok {
		return false
	}
	r.mu.Lock()
	first := !r.seen[c]
	r.seen[c] = true
	r.mu.Unlock()
	if first {
		r.log.Error("broker TLS failed; retrying in the background", "cause", c.Kind, "detail", c.Detail, "hint", c.Hint, "err", err)
	} else {
		// At debug level, so that a test (brokertest.LoggedOnce) can count
		// the attempts after the first instead of waiting for them.
		r.log.Debug("broker TLS still failing", "again", c.Kind)
	}
	return true
}
