package mqttlink

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/contracts"
	"cafe/contracts/groupwrite"
	"cafe/contracts/linktls"
)

// Config says how to reach the MQTT broker and as whom. Zero fields take
// their values from Defaults when the Link is made.
type Config struct {
	URL            string // SettingURL: tcp://[user:password@]host:port (or ssl://, ws://, wss://)
	ClientID       string
	CleanSession   bool          // false: the broker keeps subscriptions and queued QoS 1 messages while away
	ForgetSession  bool          // with CleanSession false: drop that session when Run ends (a client id that will not come back)
	KeepAlive      time.Duration // MQTT keep-alive
	ConnectTimeout time.Duration // TCP + CONNACK; also bounds renewing subscriptions and pings
	MaxBackoff     time.Duration // longest wait between connection attempts
	Quiesce        time.Duration // when Run ends, how long work in progress may finish before disconnecting
	Will           *Message      // last will, published by the broker if this client vanishes
	TLS            linktls.Files // SettingsTLS: CA and client certificate for ssl:// (mqtts://, wss://) URLs
	// OnConnect runs after every connection, once subscriptions are renewed
	// (a device announces its presence here). It runs in its own goroutine.
	OnConnect func(*Link)
}

// SettingURL is where the MQTT broker is.
var SettingURL = contracts.Setting{Flag: "mqtt-url", Env: "CAFE_MQTT_URL"}

// SettingsTLS name the files of Config.TLS.
var SettingsTLS = linktls.Settings{
	CA:   contracts.Setting{Flag: "mqtt-ca-file", Env: "CAFE_MQTT_CA_FILE"},
	Cert: contracts.Setting{Flag: "mqtt-cert-file", Env: "CAFE_MQTT_CERT_FILE"},
	Key:  contracts.Setting{Flag: "mqtt-key-file", Env: "CAFE_MQTT_KEY_FILE"},
}

// DefaultURL is the MQTT broker of a one-machine setup.
const DefaultURL = "tcp://127.0.0.1:1883"

// MaxClientIDLen bounds a client id (MQTT itself allows 65535 bytes).
const MaxClientIDLen = 256

// Defaults returns the configuration with every default filled in (the
// client id has none: every client must choose its own).
func Defaults() Config {
	return Config{
		URL:            DefaultURL,
		KeepAlive:      15 * time.Second,
		ConnectTimeout: 5 * time.Second,
		MaxBackoff:     5 * time.Second,
		Quiesce:        250 * time.Millisecond,
	}
}

func (c *Config) fill() { contracts.FillDefaults(c, Defaults()) }

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.ClientID == "" || len(c.ClientID) > MaxClientIDLen {
		errs = append(errs, fmt.Errorf("mqtt client id %q: want 1 to %d characters", contracts.Clip(c.ClientID), MaxClientIDLen))
	}
	u, err := url.Parse(c.URL)
	switch {
	case err != nil || u.Host == "":
		errs = append(errs, SettingURL.Errorf("%q: want tcp://host:port (or ssl://, ws://, wss://)", contracts.RedactURL(c.URL)))
	case !knownScheme(u.Scheme):
		errs = append(errs, SettingURL.Errorf("%q: unknown scheme %q (want tcp, ssl, ws or wss)", contracts.RedactURL(c.URL), u.Scheme))
	case c.TLS.Set() && !TLSScheme(u.Scheme):
		errs = append(errs, SettingURL.Errorf("%q is not a TLS URL but %s is set: use ssl://host:8883 (or wss://), or unset the TLS files", contracts.RedactURL(c.URL), SettingsTLS.CA.Env))
	}
	if c.KeepAlive < 0 || c.ConnectTimeout < 0 || c.MaxBackoff < 0 || c.Quiesce < 0 {
		errs = append(errs, errors.New("mqtt link: keep-alive, timeouts, backoff and quiesce must not be negative"))
	}
	return errors.Join(errs...)
}

func knownScheme(s string) bool {
	switch s {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
		return true
	}
	return false
}

// TLSScheme reports whether an MQTT URL scheme is one over TLS.
func TLSScheme(s string) bool { return s == "ssl" || s == "tls" || s == "mqtts" || s == "wss" }

// options are paho's client options for this link.
func (l *Link) options() *paho.ClientOptions {
	cfg := l.cfg
	u, _ := url.Parse(cfg.URL) // checked by Validate
	opts := paho.NewClientOptions()
	broker := *u
	broker.User = nil
	opts.AddBroker(broker.String())
	if u.User != nil {
		opts.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			opts.SetPassword(p)
		}
	}
	opts.SetClientID(cfg.ClientID)
	opts.SetCleanSession(cfg.CleanSession)
	opts.SetKeepAlive(cfg.KeepAlive)
	opts.SetPingTimeout(cfg.ConnectTimeout)
	opts.SetConnectTimeout(cfg.ConnectTimeout)
	opts.SetWriteTimeout(cfg.ConnectTimeout)
	opts.SetAutoReconnect(true)
	opts.SetConnectRetry(true)
	opts.SetConnectRetryInterval(500 * time.Millisecond)
	opts.SetMaxReconnectInterval(cfg.MaxBackoff)
	if cfg.Will != nil {
		opts.SetBinaryWill(cfg.Will.Topic, cfg.Will.Payload, cfg.Will.QoS, cfg.Will.Retained)
	}
	l.routes.none = func(topic string) { l.log.Debug("mqtt message matched no handler", "topic", topic) }
	opts.SetDefaultPublishHandler(l.routes.dispatch)
	l.setDial(opts, u.Scheme, l.tlsReport)
	opts.SetStore(l.store)
	opts.SetConnectionAttemptHandler(func(_ *url.URL, tc *tls.Config) *tls.Config {
		l.attemptGen.Store(l.store.Gen())
		return tc
	})
	opts.SetOnConnectHandler(func(paho.Client) { l.onConnect() })
	opts.SetConnectionLostHandler(func(_ paho.Client, err error) {
		l.setConnected(false)
		l.log.Warn("mqtt connection lost; reconnecting", "err", err)
	})
	return opts
}

func groupConn(c net.Conn, err error) (net.Conn, error) {
	if err != nil {
		return nil, err
	}
	return groupwrite.New(c), nil
}

// setDial gives opts the link's TLS configuration and its own dialing.
func (l *Link) setDial(opts *paho.ClientOptions, scheme string, report *linktls.Reporter) {
	if l.tls != nil {
		opts.SetTLSConfig(l.tls)
	}
	if dial := groupDial(scheme, l.cfg.ConnectTimeout, report); dial != nil {
		opts.SetCustomOpenConnectionFn(dial)
	}
}

// groupDial opens plain and TLS connections the way paho does and gathers
// their writes (package groupwrite): paho writes every packet on its own
// otherwise. WebSocket URLs keep paho's own dialing (nil). A TLS failure
// goes to report (nil: none), which explains certificate causes once.
func groupDial(scheme string, timeout time.Duration, report *linktls.Reporter) paho.OpenConnectionFunc {
	switch scheme {
	case "tcp", "mqtt":
		return func(uri *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", uri.Host, timeout)
			if err != nil {
				return nil, err
			}
			return groupwrite.New(c), nil
		}
	case "ssl", "tls", "mqtts":
		return func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
			d := &net.Dialer{Timeout: timeout}
			c, err := tls.DialWithDialer(d, "tcp", uri.Host, o.TLSConfig)
			if report == nil {
				return groupConn(c, err)
			}
			if err != nil {
				report.Report(err)
				return nil, err
			}
			return groupwrite.New(report.Conn(c)), nil
		}
	}
	return nil
}
