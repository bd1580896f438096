package brokertest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// One MQTT connection, made by hand rather than by mqttlink (which retries
// for ever): what an outsider does, for tests of who the broker lets in.

// options are paho's options for one connection to rawURL (its user and
// password the login; ssl:// trusts the local CA) as clientID, that never
// reconnects.
func options(rawURL, clientID string) (*paho.ClientOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	o := paho.NewClientOptions().AddBroker(u.Scheme + "://" + u.Host).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true)
	if u.User != nil {
		pw, _ := u.User.Password()
		o.SetUsername(u.User.Username()).SetPassword(pw)
	}
	if u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts" {
		cfg, err := trustLocalCA()
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(cfg)
	}
	return o, nil
}

// trustLocalCA is a TLS configuration that trusts this machine's local CA
// (CAFile, which signed Mosquitto's certificate).
func trustLocalCA() (*tls.Config, error) {
	pem, err := os.ReadFile(CAFile())
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in the local CA file")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// ConnectOnce makes one connection attempt to rawURL as clientID and
// closes it again: nil if the broker accepted it, its refusal otherwise
// (paho's "not Authorized", "bad user name or password", ...).
func ConnectOnce(rawURL, clientID string) error {
	o, err := options(rawURL, clientID)
	if err != nil {
		return err
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("no CONNACK within 10s")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(0)
	return nil
}

// Hold connects to rawURL as clientID, or fails the test, and stays
// connected until the test ends. The channel is closed when the broker
// drops the connection (a deleted or changed login, a take-over).
func Hold(t testing.TB, rawURL, clientID string) (paho.Client, <-chan struct{}) {
	t.Helper()
	o, err := options(rawURL, clientID)
	if err != nil {
		t.Fatal(err)
	}
	lost := make(chan struct{})
	o.SetConnectionLostHandler(func(paho.Client, error) { close(lost) })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, lost
}
