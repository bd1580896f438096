package devicesim

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"cafe/contracts"
	"cafe/contracts/mqttlink"
)

// Presence payloads. "sim" tells a human looking at the broker that this
// is not a real device; the contract allows extra members.
var (
	presenceOnline  = []byte(`{"online":true,"sim":true}`)
	presenceOffline = []byte(`{"online":false,"sim":true}`)
)

// Bounds of the presence exchanges.
const (
	announceTimeout = 10 * time.Second       // online presence after a connect
	offlineTimeout  = 5 * time.Second        // offline presence on a graceful stop
	closeQuiesce    = 250 * time.Millisecond // for the DISCONNECT to go out
)

// device is one simulated device. Its key memory, random source and
// session are guarded by mu; its counters are atomic. opMu serializes
// going online and offline.
type device struct {
	id    string
	fleet *Fleet
	log   *slog.Logger
	stats counters

	opMu sync.Mutex

	mu        sync.Mutex
	rng       *rand.Rand
	keys      *keyMemory
	sess      *session // nil while offline
	announced bool     // sess has published its online presence
}

// session is one stay online: a link and the work started during it.
// Going offline cancels ctx and waits for wg; stopped (under device.mu)
// keeps new work from being added once that began.
type session struct {
	link     *mqttlink.Link
	ctx      context.Context // the session's work; cancelled first when it stops
	cancel   context.CancelFunc
	stopLink func() // ends the link's Run, after the offline presence went out
	wg       sync.WaitGroup
	stopped  bool
}

// track adds one piece of work to s, unless s is stopping. Call with d.mu held.
func (s *session) track() bool {
	if s.stopped {
		return false
	}
	s.wg.Add(1)
	return true
}

// start connects the device in the background: subscribed to its commands
// before the first connection, announcing itself on every connection.
// Call with opMu held and the device offline.
func (d *device) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{ctx: ctx, cancel: cancel}
	presence := contracts.PresenceTopic(d.id)
	link, err := mqttlink.New(mqttlink.Config{
		URL:          d.fleet.deviceURL(d.id),
		ClientID:     d.id,
		TLS:          d.fleet.cfg.MQTTTLS,
		CleanSession: true,
		MaxBackoff:   d.fleet.cfg.MaxBackoff,
		Quiesce:      closeQuiesce,
		Will:         &mqttlink.Message{Topic: presence, Payload: presenceOffline, QoS: 1, Retained: true},
		OnConnect:    func(*mqttlink.Link) { d.announce(s) },
	}, d.fleet.linkLog)
	if err != nil {
		cancel()
		return err
	}
	s.link = link
	// Not connected yet, so this only registers the subscription, which the
	// link makes on every connection; it cannot fail.
	_ = link.Subscribe(ctx, contracts.CommandsFilter(d.id), 1, func(topic string, payload []byte) {
		d.deliver(s, topic, payload)
	})
	d.mu.Lock()
	d.sess, d.announced = s, false
	d.mu.Unlock()
	s.stopLink = link.Background()
	return nil
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
	ctx, cancel := context.WithTimeout(s.ctx, announceTimeout)
	defer cancel()
	err := s.link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(d.id), Payload: presenceOnline, QoS: 1, Retained: true})
	if err != nil {
		d.log.Warn("announcing online presence failed; the next connection retries", "err", err)
		return
	}
	d.mu.Lock()
	if d.sess == s && !s.stopped {
		d.announced = true
	}
	d.mu.Unlock()
	d.log.Debug("device online")
	d.fleet.changed()
}

// online reports whether the device is connected and has announced itself.
func (d *device) online() bool {
	d.mu.Lock()
	s, announced := d.sess, d.announced
	d.mu.Unlock()
	return s != nil && announced && s.link.Connected()
}

// wantsOnline reports whether the device has a session (it was not taken
// offline).
func (d *device) wantsOnline() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess != nil
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
	d.announced = false
	d.mu.Unlock()
	d.fleet.changed()

	s.cancel()
	s.wg.Wait()
	if s.link.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), offlineTimeout)
		err := s.link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(d.id), Payload: presenceOffline, QoS: 1, Retained: true})
		cancel()
		if err != nil {
			d.log.Warn("announcing offline presence failed; the broker keeps the last online presence", "err", err)
		}
	}
	// Not connected: the broker published the last will when the connection
	// dropped, or the device never announced itself in this session.
	s.stopLink()
	d.mu.Lock()
	d.sess = nil
	d.mu.Unlock()
	d.log.Debug("device offline")
}
