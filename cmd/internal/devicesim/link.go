package devicesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
)

// link is one device's MQTT session, made to be cheap: one goroutine
// (connect, subscribe, read), no buffers while idle, and keep-alive pings
// sent by the fleet's one pinger (keepalive.go) instead of a timer per
// link. Everything every link shares (broker, TLS, timeouts, the limit on
// handshakes in progress) is in linkShared.
//
// A link connects with a clean session and the device's last will,
// subscribes at QoS 1 to its filter, and only then reports itself
// connected and calls events.connected (in a goroutine of its own, so it
// may publish). Messages go to events.message in the reading goroutine, in
// order; it must not block. When the connection is lost, publishes waiting
// for an acknowledgement fail, events.lost runs, and the link reconnects
// with backoff until close.
//
// Per device it costs the link struct, the connection (a socket, its
// poller entry and, over TLS, the TLS state), one goroutine's stack and a
// context; topics and the will are derived from the id when connecting.
type link struct {
	shared *linkShared
	id     string // client id
	user   string // "": no login
	pass   string
	events linkEvents

	running sync.WaitGroup // run

	wmu      sync.Mutex   // one packet written at a time
	lastSent atomic.Int64 // unix nanoseconds of the last packet written
	pingSent atomic.Int64 // of the PINGREQ not yet answered; 0: none

	mu      sync.Mutex
	conn    net.Conn           // nil unless connected and subscribed
	changed chan struct{}      // made by a waiter, closed when conn changes or closing begins
	abort   context.CancelFunc // ends the connection attempt in progress; nil between attempts
	closing bool
	nextID  uint16
	pending map[uint16]chan error // QoS 1 publishes waiting for their PUBACK; nil when none
}

// linkEvents is what a link tells its device.
type linkEvents interface {
	connected()                           // connected and subscribed; in a goroutine of its own
	lost()                                // the connection was lost (or closed)
	message(topic string, payload []byte) // in the reading goroutine; must not block
}

// linkShared is what the links of one fleet have in common.
type linkShared struct {
	topics      func(id string) (filter, will string) // the subscription and the last will's topic of a client id
	willPayload []byte                                // the last will, retained at QoS 1

	addr       string            // host:port
	tls        *tls.Config       // nil: plain TCP
	tlsReport  *linktls.Reporter // explains certificate failures once each; nil without TLS
	user, pass string            // the URL's login, for devices without a secret
	keepAlive  time.Duration
	timeout    time.Duration // dial and handshake, each write, a PINGRESP
	maxBackoff time.Duration
	handshakes chan struct{} // a slot per connection attempt in progress
	report     func(error)   // a failed attempt (rate of logging is the caller's)
}

// maxHandshakes bounds the connection attempts in progress per fleet, so
// that a fleet of 15,000 starting at once (or coming back after its broker
// restarted) queues up instead of flooding the broker's accept queue and
// its password hashing.
const maxHandshakes = 32

// minBackoff is the first wait after a failed or lost connection; it
// doubles up to linkShared.maxBackoff, with jitter so that a fleet does not
// reconnect in lockstep.
const minBackoff = 100 * time.Millisecond

var errLinkClosed = errors.New("link closed")

func (sh *linkShared) newLink(id, user, pass string, events linkEvents) *link {
	return &link{shared: sh, id: id, user: user, pass: pass, events: events}
}

// start runs the link in its goroutine until close.
func (l *link) start() {
	l.running.Add(1)
	go l.run()
}

func (l *link) run() {
	defer l.running.Done()
	for attempt := 1; ; attempt++ {
		conn, err := l.connectAside()
		if err == nil {
			attempt = 0
			err = l.serve(conn)
		}
		if l.isClosing() {
			return
		}
		l.shared.report(fmt.Errorf("device %s: %w", l.id, err))
		if !l.pause(backoff(attempt, l.shared.maxBackoff)) {
			return
		}
	}
}

// pause waits for d unless the link closes first; it reports whether it
// waited. A waiting link holds a timer, which only a fleet that cannot
// connect pays for.
func (l *link) pause(d time.Duration) bool {
	ctx, ok := l.attempt()
	if !ok {
		return false
	}
	defer l.endAttempt()
	return wait(ctx, d)
}

// attempt is the context of one connection attempt (or pause), which
// close cancels; false when the link is closing.
func (l *link) attempt() (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return nil, false
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.abort = cancel
	return ctx, true
}

func (l *link) endAttempt() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.abort != nil {
		l.abort()
		l.abort = nil
	}
}

func (l *link) isClosing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closing
}

// notifyLocked wakes the waiters of reserve. Call with mu held.
func (l *link) notifyLocked() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// serve reads conn until it fails, then fails the publishes waiting on it.
func (l *link) serve(conn net.Conn) error {
	var err error
	for err == nil {
		var cp packets.ControlPacket
		if cp, err = readPacket(conn); err == nil {
			err = l.receive(conn, cp)
		}
	}
	conn.Close()
	l.mu.Lock()
	pending := l.pending
	l.conn, l.pending = nil, nil
	l.notifyLocked()
	l.mu.Unlock()
	for _, ch := range pending {
		ch <- fmt.Errorf("%w: the connection was lost before the broker acknowledged", mqttlink.ErrNotConnected)
	}
	l.events.lost()
	return fmt.Errorf("connection lost: %w", err)
}

// receive handles one packet from the broker.
func (l *link) receive(conn net.Conn, cp packets.ControlPacket) error {
	switch p := cp.(type) {
	case *packets.PublishPacket:
		if p.Qos > 1 {
			return errors.New("broker sent a QoS 2 message on a QoS 1 subscription")
		}
		l.events.message(p.TopicName, p.Payload)
		if p.Qos == 1 {
			ack := packets.NewControlPacket(packets.Puback).(*packets.PubackPacket)
			ack.MessageID = p.MessageID
			return l.write(conn, ack)
		}
	case *packets.PubackPacket:
		l.mu.Lock()
		ch, ok := l.pending[p.MessageID]
		l.releaseLocked(p.MessageID)
		l.mu.Unlock()
		if ok {
			ch <- nil
		}
	case *packets.PingrespPacket:
		l.pingSent.Store(0)
	default:
		return fmt.Errorf("unexpected mqtt packet from the broker: %T", cp)
	}
	return nil
}

// write sends one packet, bounded by the link's timeout; a failed write
// closes conn, so that the reader notices and the link reconnects.
func (l *link) write(conn net.Conn, p packets.ControlPacket) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	now := time.Now()
	_ = conn.SetWriteDeadline(now.Add(l.shared.timeout))
	if err := p.Write(conn); err != nil {
		conn.Close()
		return err
	}
	l.lastSent.Store(now.UnixNano())
	return nil
}

// connected reports whether the link is connected and subscribed.
func (l *link) connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// close disconnects cleanly (so the broker discards the last will) and
// waits for the link's goroutine. It may be called once.
func (l *link) close() {
	l.mu.Lock()
	l.closing = true // first, so that run takes the end of the connection for the end of the link
	conn := l.conn
	if l.abort != nil {
		l.abort()
	}
	l.notifyLocked()
	l.mu.Unlock()
	if conn != nil {
		_ = l.write(conn, packets.NewControlPacket(packets.Disconnect))
		conn.Close()
	}
	l.running.Wait()
}
