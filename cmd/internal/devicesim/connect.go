package devicesim

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// How a link connects: dialing (over TLS for ssl:// URLs), CONNECT with
// the last will, SUBSCRIBE, and the backoff between attempts.

// backoff is the wait before attempt number n (0: the connection was just
// lost).
func backoff(n int, ceiling time.Duration) time.Duration {
	d := minBackoff << min(n, 16)
	if ceiling > 0 {
		d = min(d, ceiling)
	}
	return d/2 + rand.N(d/2+1)
}

// connectAside runs connect in a goroutine of its own: dialing, TLS and
// the handshake take a deep stack, which would otherwise stay with the
// link's long-lived goroutine (Go shrinks a stack only at a collection,
// which an idle fleet seldom has) — about 4 KB more per device.
func (l *link) connectAside() (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := l.connect()
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}

// connect dials, logs in with the last will and subscribes; on success the
// link is connected.
func (l *link) connect() (net.Conn, error) {
	ctx, ok := l.attempt()
	if !ok {
		return nil, errLinkClosed
	}
	defer l.endAttempt()
	select {
	case l.shared.handshakes <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.shared.handshakes }()
	sh := l.shared
	d := net.Dialer{Timeout: sh.timeout}
	conn, err := d.DialContext(ctx, "tcp", sh.addr)
	if err != nil {
		return nil, err
	}
	if sh.tls != nil {
		conn = tls.Client(conn, sh.tls)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(sh.timeout))
	if err := l.handshake(conn); err != nil {
		conn.Close()
		if sh.tlsReport != nil {
			sh.tlsReport.Report(err) // a certificate failure explained once, with a hint
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	if !stop() || !l.setConn(conn) {
		conn.Close()
		return nil, errLinkClosed
	}
	go l.events.connected()
	return conn, nil
}

// handshake is CONNECT/CONNACK and SUBSCRIBE/SUBACK.
func (l *link) handshake(conn net.Conn) error {
	filter, willTopic := l.shared.topics(l.id)
	c := packets.NewControlPacket(packets.Connect).(*packets.ConnectPacket)
	c.ProtocolName, c.ProtocolVersion = "MQTT", 4
	c.CleanSession = true
	c.Keepalive = uint16(l.shared.keepAlive / time.Second)
	c.ClientIdentifier = l.id
	c.WillFlag, c.WillTopic, c.WillMessage, c.WillQos, c.WillRetain = true, willTopic, l.shared.willPayload, 1, true
	if l.user != "" {
		c.UsernameFlag, c.Username = true, l.user
		c.PasswordFlag, c.Password = l.pass != "", []byte(l.pass)
	}
	if err := l.write(conn, c); err != nil {
		return err
	}
	cp, err := readPacket(conn)
	if err != nil {
		return fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ack, ok := cp.(*packets.ConnackPacket)
	switch {
	case !ok:
		return fmt.Errorf("broker sent %T before CONNACK", cp)
	case ack.ReturnCode != packets.Accepted:
		return fmt.Errorf("broker refused the connection: %w", packets.ConnErrors[ack.ReturnCode])
	}
	s := packets.NewControlPacket(packets.Subscribe).(*packets.SubscribePacket)
	s.MessageID, s.Topics, s.Qoss = 1, []string{filter}, []byte{1}
	if err := l.write(conn, s); err != nil {
		return err
	}
	for { // a clean session has nothing queued, but a retained command may come first
		cp, err := readPacket(conn)
		if err != nil {
			return fmt.Errorf("waiting for SUBACK: %w", err)
		}
		if sa, ok := cp.(*packets.SubackPacket); ok {
			if len(sa.ReturnCodes) != 1 || sa.ReturnCodes[0] > 2 {
				return fmt.Errorf("broker refused the subscription to %s", filter)
			}
			return nil
		}
		if err := l.receive(conn, cp); err != nil {
			return err
		}
	}
}

// setConn makes conn the link's connection, unless the link is closing.
func (l *link) setConn(conn net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.conn = conn
	l.pingSent.Store(0)
	l.notifyLocked()
	return true
}
