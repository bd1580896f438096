package devicesim

import (
	"context"
	"fmt"
	"net"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"cafe/contracts/mqttlink"
)

// A link's QoS 1 publishes: a message id each, and a wait for its PUBACK.

// publish sends a message at QoS 1 once connected and waits for the
// broker's PUBACK, both until ctx ends. A reply not acknowledged before
// the connection is lost is not sent again (a clean session).
func (l *link) publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	conn, id, acked, err := l.reserve(ctx)
	if err != nil {
		return err
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.Retain, p.TopicName, p.MessageID, p.Payload = 1, retained, topic, id, payload
	if err := l.write(conn, p); err != nil {
		l.release(id)
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	select {
	case err := <-acked:
		if err != nil {
			return fmt.Errorf("publish to %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		l.release(id)
		return fmt.Errorf("publish to %s: %w: no acknowledgement: %w", topic, mqttlink.ErrNotConnected, ctx.Err())
	}
}

// reserve waits for a connection and takes a message id on it.
func (l *link) reserve(ctx context.Context) (net.Conn, uint16, chan error, error) {
	for {
		l.mu.Lock()
		conn, closing := l.conn, l.closing
		if conn != nil {
			id := l.freeID()
			acked := make(chan error, 1)
			if l.pending == nil {
				l.pending = make(map[uint16]chan error, 1)
			}
			l.pending[id] = acked
			l.mu.Unlock()
			return conn, id, acked, nil
		}
		if closing {
			l.mu.Unlock()
			return nil, 0, nil, fmt.Errorf("%w: %w", mqttlink.ErrNotConnected, errLinkClosed)
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, 0, nil, fmt.Errorf("%w: %w", mqttlink.ErrNotConnected, ctx.Err())
		}
	}
}

// freeID is a message id no waiting publish uses (never 0). Call with mu
// held; at most 65535 publishes wait at once per device.
func (l *link) freeID() uint16 {
	for {
		l.nextID++
		if _, used := l.pending[l.nextID]; l.nextID != 0 && !used {
			return l.nextID
		}
	}
}

func (l *link) release(id uint16) {
	l.mu.Lock()
	l.releaseLocked(id)
	l.mu.Unlock()
}

// releaseLocked frees a message id; the map goes with the last one (a
// map keeps its size after deletes).
func (l *link) releaseLocked(id uint16) {
	delete(l.pending, id)
	if len(l.pending) == 0 {
		l.pending = nil
	}
}
