package brokertest

import (
	"errors"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// One MQTT connection, made by hand rather than by mqttlink (which retries
// for ever): what an outsider does, for tests of who the broker lets in.

// options are paho's options for one plain connection to rawURL (its user
// and password the login) as clientID, that never reconnects.
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
	return o, nil
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
