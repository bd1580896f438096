// Package mqttlink is how cafe's services and tools speak MQTT: one Link per
// client id, connecting in the background (a service starts even when the
// broker is down), reconnecting with backoff, and renewing its subscriptions
// on every connection before it reports itself connected.
//
// Handlers run one at a time in the client's delivery goroutine, in the order
// messages arrive (so a device's presence updates are never reordered); they
// must not block. Publish waits for the connection and for the broker's
// acknowledgement (PUBACK at QoS 1), both bounded by its context.
//
// An ssl:// (tls://, mqtts://, wss://) URL connects over TLS; Config.TLS
// gives the CA file (default: the system's trust store) and an optional
// client certificate and key (SettingsTLS: CAFE_MQTT_CA_FILE,
// CAFE_MQTT_CERT_FILE, CAFE_MQTT_KEY_FILE), read by New, which refuses
// files it cannot use and TLS files with a plain URL. A certificate failure
// while connecting is logged once per cause with a hint (package linktls);
// paho keeps retrying. (Over wss:// paho dials itself, so its certificate
// failures go unexplained.)
package mqttlink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/contracts/linktls"
)

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
	routes routes

	tls       *tls.Config       // from cfg.TLS; nil: paho's default
	tlsReport *linktls.Reporter // explains certificate failures once each

	attemptGen atomic.Uint64 // store generation when the current connection attempt began

	mu        sync.Mutex
	subs      map[string]byte // filter → qos, renewed on every connection
	subsGen   uint64          // incremented by every Subscribe
	connected bool
	changed   chan struct{} // closed and replaced when connected changes
	lost      chan struct{} // closed when the current connection is lost
	closed    bool

	sync syncer

	ctx      context.Context // cancelled by Close: ends waits in onConnect
	cancel   context.CancelFunc
	handlers sync.WaitGroup // onConnect runs; Close waits for them
}

// New returns a Link; Run connects it.
func New(cfg Config, log *slog.Logger) (*Link, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, err := cfg.TLS.Load(SettingsTLS)
	if err != nil {
		return nil, err
	}
	l := &Link{cfg: cfg, log: log.With("mqtt_client", cfg.ClientID), subs: map[string]byte{}, changed: make(chan struct{}), store: newResumeStore(), tls: tc}
	l.tlsReport = linktls.NewReporter(l.log, SettingsTLS)
	l.lost = make(chan struct{})
	close(l.lost) // not connected yet
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.client = paho.NewClient(l.options())
	return l, nil
}

// Run connects in the background (a service starts even when the broker is
// down), keeps the link connected and subscribed until ctx is done, then
// disconnects, giving work in progress Config.Quiesce, and, with
// Config.ForgetSession, drops the persistent session. It returns nil after
// ctx is done. A Link runs once.
func (l *Link) Run(ctx context.Context) error {
	l.client.Connect() // with ConnectRetry the token completes only on success; never waited on
	<-ctx.Done()
	l.close()
	return nil
}

// Background runs l (see Run) in a goroutine of its own until the returned
// stop is called; stop waits for Run to return and may be called again.
// It is for tools and tests that hold a link for a while; services pass
// Run to their supervisor instead.
func (l *Link) Background() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	return func() { cancel(); <-done }
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
		gen, err := l.renew()
		if err == nil {
			ok, current := l.markConnected(gen)
			if !ok {
				return // closed meanwhile
			}
			if current {
				break
			}
			continue // a Subscribe came in while renewing, and did not subscribe: renew again
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
	l.log.Info("mqtt connected")
	if l.cfg.OnConnect != nil {
		l.cfg.OnConnect(l)
	}
}

// renew subscribes to every filter registered so far and returns the
// generation of the set it renewed.
func (l *Link) renew() (uint64, error) {
	l.mu.Lock()
	filters := make(map[string]byte, len(l.subs))
	for f, q := range l.subs {
		filters[f] = q
	}
	gen := l.subsGen
	l.mu.Unlock()
	if len(filters) == 0 {
		return gen, nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.ConnectTimeout)
	defer cancel()
	return gen, wait(ctx, l.client.SubscribeMultiple(filters, nil), "renew subscriptions")
}

// markConnected reports the link connected if no Subscribe came in since
// the renewal of generation gen (current); ok is false once closed.
func (l *Link) markConnected(gen uint64) (ok, current bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subsGen != gen {
		return !l.closed, false
	}
	return l.setConnectedLocked(true), true
}

// setConnected records the connection state; a closed link never becomes
// connected again. It reports whether the state is now ok.
func (l *Link) setConnected(ok bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.setConnectedLocked(ok)
}

func (l *Link) setConnectedLocked(ok bool) bool {
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
	l.routes.add(filter, h)
	l.mu.Lock()
	l.subs[filter] = qos
	l.subsGen++
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

// close disconnects, waiting up to Config.Quiesce for work in progress,
// and forgets the session if so configured: the link reconnects once with
// a clean session, so a client id that will not come back leaves nothing
// queued behind.
func (l *Link) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cancel()
	l.client.Disconnect(uint(l.cfg.Quiesce.Milliseconds()))
	l.setConnected(false)
	l.handlers.Wait()
	if !l.cfg.ForgetSession || l.cfg.CleanSession {
		return
	}
	r := l.client.OptionsReader()
	opts := paho.NewClientOptions().SetClientID(l.cfg.ClientID).SetCleanSession(true).
		SetConnectTimeout(l.cfg.ConnectTimeout).SetUsername(r.Username()).SetPassword(r.Password())
	for _, s := range r.Servers() {
		opts.AddBroker(s.String())
	}
	l.setDial(opts, r.Servers()[0].Scheme, nil)
	c := paho.NewClient(opts)
	if t := c.Connect(); t.WaitTimeout(l.cfg.ConnectTimeout) && t.Error() == nil {
		c.Disconnect(0)
	}
}
