package devicesim

import (
	"context"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// pingTick is how often the fleet's one pinger visits every link: a fleet
// keeps its devices alive with one ticker, not a timer per device.
const pingTick = time.Second

// pinger visits every device's link once per pingTick until ctx ends: a
// PINGREQ for a link idle for a keep-alive period, the connection dropped
// for one whose PINGREQ went unanswered (link.ping).
func (f *Fleet) pinger(ctx context.Context) {
	t := time.NewTicker(pingTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, d := range f.devices {
				if l := d.link(); l != nil {
					l.ping(now)
				}
			}
		}
	}
}

// ping is the pinger's visit (keepalive.go): a PINGREQ when nothing was
// written for a keep-alive period, and the connection dropped when a
// PINGREQ went unanswered for the link's timeout (so the broker publishes
// the last will, and the link reconnects).
func (l *link) ping(now time.Time) {
	l.mu.Lock()
	conn := l.conn
	l.mu.Unlock()
	if conn == nil || l.shared.keepAlive <= 0 {
		return
	}
	if sent := l.pingSent.Load(); sent != 0 {
		if now.Sub(time.Unix(0, sent)) > l.shared.timeout {
			conn.Close()
		}
		return
	}
	if now.Sub(time.Unix(0, l.lastSent.Load())) < l.shared.keepAlive-pingTick {
		return
	}
	l.pingSent.Store(now.UnixNano())
	_ = l.write(conn, packets.NewControlPacket(packets.Pingreq))
}
