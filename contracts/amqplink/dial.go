package amqplink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/groupwrite"
)

// connect tries each URL once, in turn from l.next, and returns the first
// connection that is up with its topology declared (l.next then says
// which URL it is); the error names every URL's failure.
func (l *Link) connect() (*amqp.Connection, error) {
	var errs []error
	for range l.urls {
		conn, err := l.connectTo(l.urls[l.next])
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		l.next = (l.next + 1) % len(l.urls)
	}
	return nil, errors.Join(errs...)
}

// connectTo dials one URL, checks the server and declares the topology.
func (l *Link) connectTo(rawURL string) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(l.cfg.Name)
	conn, err := amqp.DialConfig(rawURL, amqp.Config{
		Heartbeat:       l.cfg.Heartbeat,
		Locale:          "en_US",
		Properties:      props,
		Dial:            groupDial(l.cfg.DialTimeout),
		TLSClientConfig: l.tlsConfig(),
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", contracts.RedactURL(rawURL), err)
	}
	if err := CheckServer(conn.Properties); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %w", contracts.RedactURL(rawURL), err)
	}
	if err := Ensure(conn, l.cfg.Topology, l.cfg.Passive); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("%s: %w", contracts.RedactURL(rawURL), err)
	}
	return conn, nil
}

// tlsConfig is a copy of the link's TLS configuration for one dial
// (amqp091-go fills in its ServerName), or nil.
func (l *Link) tlsConfig() *tls.Config {
	if l.tls == nil {
		return nil
	}
	return l.tls.Clone()
}

// groupDial dials like amqp091-go's default and gathers the connection's
// writes (package groupwrite): one publish or ack is one write otherwise.
func groupDial(timeout time.Duration) func(network, addr string) (net.Conn, error) {
	dial := amqp.DefaultDial(timeout)
	return func(network, addr string) (net.Conn, error) {
		c, err := dial(network, addr)
		if err != nil {
			return nil, err
		}
		return groupwrite.New(c), nil
	}
}

// Dial opens one connection as cfg says (its URLs, tried in order, dial
// timeout and TLS files), for tools that need a connection once rather
// than a Link that keeps one up.
func Dial(cfg Config) (*amqp.Connection, error) {
	cfg.fill()
	urls, err := ParseURLs(cfg.URL)
	if err != nil {
		return nil, err
	}
	tc, err := cfg.TLS.Load(SettingsTLS)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		var t *tls.Config
		if tc != nil {
			t = tc.Clone()
		}
		conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(cfg.DialTimeout), TLSClientConfig: t})
		if err == nil {
			return conn, nil
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", contracts.RedactURL(u), err))
	}
	return nil, errors.Join(errs...)
}
