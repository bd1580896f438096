package devicesim

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"cafe/contracts"
)

// Presence payloads. "sim" tells a human looking at the broker that this
// is not a real device; the contract allows extra members.
var (
	presenceOnline  = []byte(`{"online":true,"sim":true}`)
	presenceOffline = []byte(`{"online":false,"sim":true}`)
)

// offlineTimeout bounds the offline presence on a graceful stop.
const offlineTimeout = 5 * time.Second

// device is one simulated device. Its key memory, random source and
// session are guarded by mu; its counters are atomic. opMu serializes
// going online and offline. It holds no logger of its own (a fleet of
// 60,000 would pay for 60,000): it logs through the fleet's, with its id.
type device struct {
	id    string
	fleet *Fleet
	stats counters

	opMu sync.Mutex

	mu        sync.Mutex
	rng       *rand.Rand
	keys      *keyMemory
	sess      *session // nil while offline
	announced bool     // sess is connected and has published its online presence
}

// session is one stay online: a link and the work started during it.
// Going offline cancels ctx and waits for wg; stopped (under device.mu)
// keeps new work from being added once that began. It receives its
// link's events (linkEvents).
type session struct {
	d       *device
	link    *link
	ctx     context.Context // the session's work; cancelled first when it stops
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped bool
}

func (s *session) connected()                           { s.d.announce(s) }
func (s *session) lost()                                { s.d.lost(s) }
func (s *session) message(topic string, payload []byte) { s.d.deliver(s, topic, payload) }

// track adds one piece of work to s, unless s is stopping. Call with d.mu held.
func (s *session) track() bool {
	if s.stopped {
		return false
	}
	s.wg.Add(1)
	return true
}

// start connects the device in the background: subscribed to its commands
// before it counts as connected, announcing itself on every connection.
// Call with opMu held and the device offline.
func (d *device) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{d: d, ctx: ctx, cancel: cancel}
	user, pass := d.fleet.login(d.id)
	s.link = d.fleet.links.newLink(d.id, user, pass, s)
	d.mu.Lock()
	d.sess, d.announced = s, false
	d.mu.Unlock()
	d.fleet.wanted.Add(1)
	s.link.start()
}

// announce publishes the retained online presence; the link calls it after
// every connection, in a goroutine of its own.
func (d *device) announce(s *session) {
	d.mu.Lock()
	ok := s.track()
	d.mu.Unlock()
	if !ok {
		return
	}
	defer s.wg.Done()
	// Bounded by the session, not by a timeout: a context derived from
	// s.ctx would leave s.ctx a map of children for good (about 400 bytes
	// a device). A PUBACK that never comes means a dead connection, which
	// the keep-alive drops, failing the publish.
	if err := s.link.publish(s.ctx, contracts.PresenceTopic(d.id), presenceOnline, true); err != nil {
		d.fleet.log.Warn("announcing online presence failed; the next connection retries", "device_id", d.id, "err", err)
		return
	}
	d.mu.Lock()
	// The link reports a lost connection (lost) only after it stopped
	// counting as connected, so either this sees it, or lost undoes this.
	changed := d.sess == s && !s.stopped && !d.announced && s.link.connected()
	if changed {
		d.announced = true
		d.fleet.online.Add(1)
	}
	d.mu.Unlock()
	if changed {
		d.fleet.log.Debug("device online", "device_id", d.id)
		d.fleet.changed()
	}
}

// lost is the link's news that its connection is gone: the broker
// publishes the last will, and the device is no longer online until it has
// announced itself on the next one.
func (d *device) lost(s *session) {
	d.mu.Lock()
	changed := d.sess == s && d.announced
	if changed {
		d.announced = false
		d.fleet.online.Add(-1)
	}
	d.mu.Unlock()
	if changed {
		d.fleet.changed()
	}
}

// online reports whether the device is connected and has announced itself.
func (d *device) online() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess != nil && d.announced
}

// wantsOnline reports whether the device has a session (it was not taken
// offline).
func (d *device) wantsOnline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess != nil
}

// link is the device's current link, or nil while offline.
func (d *device) link() *link {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess == nil {
		return nil
	}
	return d.sess.link
}

// stop takes the device offline gracefully: no new work, work in progress
// cut short, retained offline presence published, then a clean disconnect
// (which the broker answers by discarding the last will). Call with opMu
// held; a device already offline is left alone.
func (d *device) stop() {
	d.mu.Lock()
	s := d.sess
	if s == nil {
		d.mu.Unlock()
		return
	}
	s.stopped = true
	if d.announced {
		d.announced = false
		d.fleet.online.Add(-1)
	}
	d.mu.Unlock()
	d.fleet.wanted.Add(-1)
	d.fleet.changed()

	s.cancel()
	s.wg.Wait()
	if s.link.connected() {
		ctx, cancel := context.WithTimeout(context.Background(), offlineTimeout)
		err := s.link.publish(ctx, contracts.PresenceTopic(d.id), presenceOffline, true)
		cancel()
		if err != nil {
			d.fleet.log.Warn("announcing offline presence failed; the broker keeps the last online presence", "device_id", d.id, "err", err)
		}
	}
	// Not connected: the broker published the last will when the connection
	// dropped, or the device never announced itself in this session.
	s.link.close()
	d.mu.Lock()
	d.sess = nil
	d.mu.Unlock()
	d.fleet.log.Debug("device offline", "device_id", d.id)
}
