package devicesim

import (
	"context"
	"time"
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
