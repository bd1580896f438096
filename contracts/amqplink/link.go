package amqplink

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/linktls"
)

// Config says how to reach RabbitMQ and which topology to keep declared.
// Zero fields take their values from Defaults when the Link is made, except
// Topology, which has meaningful zeros (see contracts.Topology): start it
// from contracts.DefaultTopology.
type Config struct {
	URL      string             // SettingURL: amqp://user:pass@host:port/vhost, or several, comma-separated (ParseURLs)
	Topology contracts.Topology `fill:"-"` // declared on every connection; not filled (see above)
	// Passive: only check that the topology exists, for a user that may
	// not declare it (every role but cafe-admin).
	Passive     bool
	Name        string        // connection name shown by RabbitMQ (rabbitmqctl list_connections name)
	MaxBackoff  time.Duration // longest wait between connection attempts
	Heartbeat   time.Duration // AMQP heartbeat
	DialTimeout time.Duration // TCP + handshake
	TLS         linktls.Files // SettingsTLS: CA and client certificate for amqps:// URLs
}

// SettingURL is where RabbitMQ is: one URL, or one per node of a cluster,
// separated by commas (see ParseURLs).
var SettingURL = contracts.Setting{Flag: "amqp-url", Env: "CAFE_AMQP_URL"}

// SettingsTLS name the files of Config.TLS.
var SettingsTLS = linktls.Settings{
	CA:   contracts.Setting{Flag: "amqp-ca-file", Env: "CAFE_AMQP_CA_FILE"},
	Cert: contracts.Setting{Flag: "amqp-cert-file", Env: "CAFE_AMQP_CERT_FILE"},
	Key:  contracts.Setting{Flag: "amqp-key-file", Env: "CAFE_AMQP_KEY_FILE"},
}

// DefaultURL is the RabbitMQ of a one-machine setup.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Defaults returns the configuration with every default filled in.
func Defaults() Config {
	return Config{
		URL:         DefaultURL,
		Topology:    contracts.DefaultTopology(),
		Name:        "cafe",
		MaxBackoff:  5 * time.Second,
		Heartbeat:   10 * time.Second,
		DialTimeout: 5 * time.Second,
	}
}

func (c *Config) fill() { contracts.FillDefaults(c, Defaults()) }

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if urls, err := ParseURLs(c.URL); err != nil {
		errs = append(errs, err)
	} else if c.TLS.Set() && !strings.HasPrefix(urls[0], "amqps://") {
		errs = append(errs, SettingURL.Errorf("%q is not a TLS URL but %s is set: use amqps://host:5671/, or unset the TLS files", contracts.RedactURL(urls[0]), SettingsTLS.CA.Env))
	}
	if c.MaxBackoff < 0 || c.Heartbeat < 0 || c.DialTimeout < 0 {
		errs = append(errs, errors.New("amqp link: backoff, heartbeat and dial timeout must not be negative"))
	}
	return errors.Join(append(errs, c.Topology.Validate())...)
}

// ErrClosed is returned by Conn and Channel once Run has returned.
var ErrClosed = errors.New("amqp link closed")

// Link keeps one AMQP connection up: it dials with backoff, checks the
// server, declares the topology, and dials again whenever the connection
// drops. Users ask it for the current connection or a fresh channel; it never
// hands out a connection whose topology is not declared.
type Link struct {
	cfg       Config
	urls      []string // cfg.URL's list; connect tries them in turn
	next      int      // the URL the next connect tries first (Run's goroutine only)
	log       *slog.Logger
	tls       *tls.Config       // from cfg.TLS; nil: the system's trust store
	tlsReport *linktls.Reporter // explains certificate failures once each

	mu      sync.Mutex
	conn    *amqp.Connection
	changed chan struct{} // closed and replaced whenever conn or blocked changes
	done    bool
	lastErr error
	lost    chan struct{} // closed while publishing is impossible (see PublishGate)
	isLost  bool

	blocked atomic.Bool
}

// New returns a Link; Run starts it.
func New(cfg Config, log *slog.Logger) (*Link, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tc, err := cfg.TLS.Load(SettingsTLS)
	if err != nil {
		return nil, err
	}
	urls, _ := ParseURLs(cfg.URL) // Validate checked it
	l := &Link{cfg: cfg, urls: urls, log: log.With("link", cfg.Name), tls: tc, changed: make(chan struct{}), lost: make(chan struct{}), isLost: true}
	l.tlsReport = linktls.NewReporter(l.log, SettingsTLS)
	close(l.lost)
	return l, nil
}

// Topology is the topology this link declares.
func (l *Link) Topology() contracts.Topology { return l.cfg.Topology }

// User is the RabbitMQ user this link logs in as (guest when its URL names
// none, as RabbitMQ's client libraries do). Every message it publishes
// carries it as its user-id, which RabbitMQ checks against the login.
func (l *Link) User() string {
	uri, err := amqp.ParseURI(l.urls[0]) // every URL of the list has the same user
	if err != nil {
		return "" // New validated the URL; amqp.ParseURI is only stricter about ports
	}
	return uri.Username
}

// Ready reports whether a connection is up (its topology declared).
func (l *Link) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil && !l.conn.IsClosed()
}

// Blocked reports whether RabbitMQ has blocked publishing on this
// connection (a memory or disk alarm: connection.blocked).
func (l *Link) Blocked() bool { return l.blocked.Load() }

// LastError is the error of the last failed connection attempt, or nil.
func (l *Link) LastError() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Run keeps the connection up until ctx is done, then closes it. It returns
// nil after ctx is done; it never gives up before.
func (l *Link) Run(ctx context.Context) error {
	defer l.finish()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = l.cfg.MaxBackoff
	failures := 0
	for {
		conn, err := l.connect()
		if err != nil {
			failures++
			l.setErr(err)
			switch {
			case l.tlsReport.Report(err): // a certificate cause, explained once
			case failures == 1:
				l.log.Warn("rabbitmq unreachable; retrying in the background", "err", err, "urls", len(l.urls))
			default:
				l.log.Debug("rabbitmq still unreachable", "err", err, "attempt", failures)
			}
			if !sleep(ctx, b.NextBackOff()) {
				return nil
			}
			continue
		}
		b.Reset()
		l.log.Info("rabbitmq connected", "url", contracts.RedactURL(l.urls[l.next]), "cluster", conn.Properties["cluster_name"],
			"server", conn.Properties["version"], "failed_attempts", failures)
		l.next = (l.next + 1) % len(l.urls) // after a drop, another node first: this one may be the one that died
		failures = 0
		l.serve(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// serve publishes conn to users and watches it until it closes or ctx ends.
func (l *Link) serve(ctx context.Context, conn *amqp.Connection) {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	l.setConn(conn)
	defer l.setBlocked(false)
	for {
		select {
		case <-ctx.Done():
			l.setConn(nil)
			_ = conn.CloseDeadline(time.Now().Add(2 * time.Second))
			return
		case err := <-closed:
			l.setConn(nil)
			l.log.Warn("rabbitmq connection lost; reconnecting", "err", err)
			return
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			l.setBlocked(b.Active)
			if b.Active {
				l.log.Warn("rabbitmq blocked publishing (resource alarm)", "reason", b.Reason)
			} else {
				l.log.Info("rabbitmq unblocked publishing")
			}
		}
	}
}

// Conn returns the current connection, waiting for one until ctx is done.
func (l *Link) Conn(ctx context.Context) (*amqp.Connection, error) {
	for {
		l.mu.Lock()
		conn, changed, done := l.conn, l.changed, l.done
		l.mu.Unlock()
		if done {
			return nil, ErrClosed
		}
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-changed:
		}
	}
}

// Channel opens a channel on the current connection, waiting for a
// connection until ctx is done.
func (l *Link) Channel(ctx context.Context) (*amqp.Channel, error) {
	ch, _, err := l.channel(ctx)
	return ch, err
}

// current reports whether conn is the link's live connection.
func (l *Link) current(conn *amqp.Connection) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return conn != nil && l.conn == conn && !conn.IsClosed()
}

func (l *Link) channel(ctx context.Context) (*amqp.Channel, *amqp.Connection, error) {
	for {
		conn, err := l.Conn(ctx)
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil {
			return ch, conn, nil
		}
		l.log.Debug("open channel failed; waiting for the connection to settle", "err", err)
		if !sleep(ctx, 100*time.Millisecond) {
			return nil, nil, ctx.Err()
		}
	}
}

func (l *Link) setConn(conn *amqp.Connection) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conn = conn
	if conn != nil {
		l.lastErr = nil
	}
	l.changedLocked()
}

func (l *Link) setBlocked(blocked bool) {
	l.blocked.Store(blocked)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changedLocked()
}

// changedLocked wakes everyone waiting for a change and opens or closes
// the publish gate. l.mu must be held.
func (l *Link) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
	open := l.conn != nil && !l.done && !l.blocked.Load()
	switch {
	case open && l.isLost:
		l.lost, l.isLost = make(chan struct{}), false
	case !open && !l.isLost:
		close(l.lost)
		l.isLost = true
	}
}

func (l *Link) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastErr = err
}

func (l *Link) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	l.conn = nil
	l.changedLocked()
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
