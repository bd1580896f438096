// Package mqttlink is how cafe's services and tools speak MQTT: one Link per
// client id, connecting in the background (a service starts even when the
// broker is down), reconnecting with backoff, and renewing its subscriptions
// on every connection before it reports itself connected.
//
// Handlers run one at a time in the client's delivery goroutine, in the order
// messages arrive (so a device's presence updates are never reordered); they
// must not block. Publish waits for the connection and for the broker's
// acknowledgement (PUBACK at QoS 1), both bounded by its context.
package mqttlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/contracts/groupwrite"
)

// Config says how to reach the MQTT broker and as whom.
type Config struct {
	URL            string // tcp://[user:password@]host:port
	ClientID       string
	CleanSession   bool          // false: the broker keeps subscriptions and queued QoS 1 messages while away
	KeepAlive      time.Duration // default 15s
	ConnectTimeout time.Duration // default 5s
	MaxBackoff     time.Duration // longest wait between connection attempts; default 5s
	Will           *Message      // last will, published by the broker if this client vanishes
	// OnConnect runs after every connection, once subscriptions are renewed
	// (a device announces its presence here). It runs in its own goroutine.
	OnConnect func(*Link)
}

// Message is an MQTT message to publish.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retained bool
}

// Handler receives a message. It runs in the client's delivery goroutine and
// must not block; payload must not be kept after it returns unless copied.
type Handler func(topic string, payload []byte)

// ErrNotConnected is returned when the broker cannot be reached in time.
var ErrNotConnected = errors.New("not connected to the mqtt broker")

// Link is an MQTT client that keeps itself connected and subscribed.
type Link struct {
	cfg    Config
	log    *slog.Logger
	client paho.Client
	store  *resumeStore

	attemptGen atomic.Uint64 // store generation when the current connection attempt began

	mu        sync.Mutex
	subs      map[string]byte // filter → qos, renewed on every connection
	connected bool
	changed   chan struct{} // closed and replaced when connected changes
	lost      chan struct{} // closed when the current connection is lost
	closed    bool

	sync syncer

	ctx      context.Context // cancelled by Close: ends waits in onConnect
	cancel   context.CancelFunc
	handlers sync.WaitGroup // onConnect runs; Close waits for them
}

// New returns a Link; Start connects it.
func New(cfg Config, log *slog.Logger) (*Link, error) {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 15 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.ClientID == "" || len(cfg.ClientID) > 256 {
		return nil, fmt.Errorf("mqtt client id %q: want 1 to 256 characters", cfg.ClientID)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt url %q: want tcp://host:port (or ssl://, ws://, wss://)", Redact(cfg.URL))
	}
	switch u.Scheme {
	case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
	default:
		return nil, fmt.Errorf("mqtt url %q: unknown scheme %q (want tcp, ssl, ws or wss)", Redact(cfg.URL), u.Scheme)
	}
	l := &Link{cfg: cfg, log: log.With("mqtt_client", cfg.ClientID), subs: map[string]byte{}, changed: make(chan struct{}), store: newResumeStore()}
	l.lost = make(chan struct{})
	close(l.lost) // not connected yet
	l.ctx, l.cancel = context.WithCancel(context.Background())

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
	opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
		l.log.Debug("mqtt message matched no handler", "topic", m.Topic())
	})
	if dial := groupDial(u.Scheme, cfg.ConnectTimeout); dial != nil {
		opts.SetCustomOpenConnectionFn(dial)
	}
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
	l.client = paho.NewClient(opts)
	return l, nil
}

// Start begins connecting in the background; it never blocks.
func (l *Link) Start() {
	l.client.Connect() // with ConnectRetry the token completes only on success; never waited on
}

// Connected reports whether the link is connected with its subscriptions renewed.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connected
}

// WaitConnected waits until Connected or ctx is done.
func (l *Link) WaitConnected(ctx context.Context) error {
	for {
		l.mu.Lock()
		ok, changed, closed := l.connected, l.changed, l.closed
		l.mu.Unlock()
		if ok {
			return nil
		}
		if closed {
			return ErrNotConnected
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

func (l *Link) onConnect() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.handlers.Add(1) // under the lock, so never after Close began waiting
	l.mu.Unlock()
	defer l.handlers.Done()

	// paho runs this in its own goroutine, so it may wait. First for paho to
	// take its snapshot of messages to resend (see resumeStore), then for
	// the subscriptions to be renewed; only then is the link connected. A
	// failed renewal is retried for as long as this connection lasts.
	if !l.store.waitPast(l.ctx, l.attemptGen.Load(), l.cfg.ConnectTimeout) && l.ctx.Err() == nil {
		l.log.Warn("paho did not resume its session in time; publishing anyway")
	}
	for {
		err := l.renew()
		if err == nil {
			break
		}
		if l.ctx.Err() != nil {
			return
		}
		l.log.Warn("renewing subscriptions failed; retrying", "err", err)
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if !l.client.IsConnectionOpen() {
			return // the next connection renews them again
		}
	}
	if !l.setConnected(true) {
		return // closed meanwhile
	}
	l.log.Info("mqtt connected")
	if l.cfg.OnConnect != nil {
		l.cfg.OnConnect(l)
	}
}

func (l *Link) renew() error {
	l.mu.Lock()
	filters := make(map[string]byte, len(l.subs))
	for f, q := range l.subs {
		filters[f] = q
	}
	l.mu.Unlock()
	if len(filters) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.ConnectTimeout)
	defer cancel()
	return wait(ctx, l.client.SubscribeMultiple(filters, nil), "renew subscriptions")
}

// setConnected records the connection state; a closed link never becomes
// connected again. It reports whether the state is now ok.
func (l *Link) setConnected(ok bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok && l.closed {
		return false
	}
	if l.connected != ok {
		l.connected = ok
		close(l.changed)
		l.changed = make(chan struct{})
		if ok {
			l.lost = make(chan struct{})
		} else {
			close(l.lost)
		}
	}
	return true
}

// Lost returns a channel that is closed when the current connection is lost
// (already closed while not connected).
func (l *Link) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// Subscribe routes messages matching filter to h from now on, on this and
// every later connection. When connected it subscribes at once and waits for
// the broker's SUBACK until ctx is done; otherwise the subscription is made
// on the next connection.
func (l *Link) Subscribe(ctx context.Context, filter string, qos byte, h Handler) error {
	l.client.AddRoute(filter, func(_ paho.Client, m paho.Message) { h(m.Topic(), m.Payload()) })
	l.mu.Lock()
	l.subs[filter] = qos
	connected := l.connected
	l.mu.Unlock()
	if !connected {
		return nil
	}
	return wait(ctx, l.client.Subscribe(filter, qos, nil), "subscribe "+filter)
}

// Publish sends a message and waits, until ctx is done, for a connection and
// then for the broker to acknowledge it (QoS 1 and 2; QoS 0 returns once
// written). A message not acknowledged in time may still reach the broker
// later: at QoS 1 the client keeps it and resends it after a reconnect.
func (l *Link) Publish(ctx context.Context, m Message) error {
	if err := l.WaitConnected(ctx); err != nil {
		return err
	}
	return wait(ctx, l.client.Publish(m.Topic, m.QoS, m.Retained, m.Payload), "publish to "+m.Topic)
}

func wait(ctx context.Context, t paho.Token, what string) error {
	select {
	case <-t.Done():
		if err := t.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w: no acknowledgement: %w", what, ErrNotConnected, ctx.Err())
	}
}

// Close disconnects, waiting up to quiesce for work in progress. With
// forgetSession, a link with a persistent session also asks the broker to
// drop that session (it reconnects once with a clean session), so a client
// id that will not come back leaves nothing queued behind.
func (l *Link) Close(quiesce time.Duration, forgetSession bool) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.client.Disconnect(uint(quiesce.Milliseconds()))
	l.setConnected(false)
	l.handlers.Wait()
	if forgetSession && !l.cfg.CleanSession {
		r := l.client.OptionsReader()
		opts := paho.NewClientOptions().SetClientID(l.cfg.ClientID).SetCleanSession(true).
			SetConnectTimeout(l.cfg.ConnectTimeout).SetUsername(r.Username()).SetPassword(r.Password())
		for _, s := range r.Servers() {
			opts.AddBroker(s.String())
		}
		c := paho.NewClient(opts)
		if t := c.Connect(); t.WaitTimeout(l.cfg.ConnectTimeout) && t.Error() == nil {
			c.Disconnect(0)
		}
	}
}

// groupDial opens plain and TLS connections the way paho does and gathers
// their writes (package groupwrite): paho writes every packet on its own
// otherwise. WebSocket URLs keep paho's own dialing (nil).
func groupDial(scheme string, timeout time.Duration) paho.OpenConnectionFunc {
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
			if err != nil {
				return nil, err
			}
			return groupwrite.New(c), nil
		}
	}
	return nil
}

// Redact hides the password of a broker URL for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}
