package devicesim

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"cafe/contracts"
	"cafe/contracts/linktls"
	"cafe/contracts/mqttlink"
)

// Errors of the fleet's lifecycle.
var (
	ErrUnknownDevice = errors.New("no such device in the fleet")
	ErrNotRunning    = errors.New("fleet is not running")
	ErrAlreadyRun    = errors.New("fleet has already been run")
)

type fleetState int

const (
	stateNew      fleetState = iota
	stateStarting            // devices being started; WaitOnline must not look yet
	stateRunning
	stateStopping
	stateDone
)

// Fleet is a set of simulated devices, each with an MQTT connection of its
// own. Run it once; its methods are safe for concurrent use.
type Fleet struct {
	cfg     Config
	log     *slog.Logger
	links   *linkShared
	devices []*device
	byID    map[string]*device

	online atomic.Int64 // devices connected and announced
	wanted atomic.Int64 // devices with a session (not taken offline)

	mu     sync.Mutex
	state  fleetState
	change chan struct{} // closed and replaced whenever a device or the fleet changes state
}

// New validates cfg (after filling its defaults) and builds the fleet; Run
// connects it. A nil logger discards.
func New(cfg Config, log *slog.Logger) (*Fleet, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1 + rand.Int64N(math.MaxInt64) // positive, so --seed can take it back
	}
	ids, err := cfg.ids()
	if err != nil {
		return nil, err
	}
	links, err := newLinkShared(cfg, log)
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		cfg:    cfg,
		log:    log,
		links:  links,
		byID:   make(map[string]*device, len(ids)),
		change: make(chan struct{}),
	}
	keysEach, bytesEach := cfg.KeyMemory/len(ids), RememberedReplyBytes/len(ids)
	f.devices = make([]*device, 0, len(ids))
	for i, id := range ids {
		d := &device{
			id:    id,
			fleet: f,
			// One stream per device: its choices depend only on the order
			// in which its own commands arrive.
			rng:  rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i))),
			keys: newKeyMemory(keysEach, bytesEach),
		}
		f.devices = append(f.devices, d)
		f.byID[id] = d
	}
	return f, nil
}

// IDs returns the device ids, in order.
func (f *Fleet) IDs() []string {
	ids := make([]string, len(f.devices))
	for i, d := range f.devices {
		ids[i] = d.id
	}
	return ids
}

// Seed is the seed of the fleet's random choices (picked by New when the
// config left it 0).
func (f *Fleet) Seed() int64 { return f.cfg.Seed }

// Run connects every device (in the background: devices keep trying while
// the broker is away) and serves commands until ctx is done. Then every
// device cuts its work short, publishes its offline presence and
// disconnects, and Run returns nil. A fleet runs once.
func (f *Fleet) Run(ctx context.Context) error {
	f.mu.Lock()
	if f.state != stateNew {
		f.mu.Unlock()
		return ErrAlreadyRun
	}
	f.state = stateStarting
	f.mu.Unlock()
	f.log.Info("fleet starting", "devices", len(f.devices), "seed", f.cfg.Seed, "mqtt_url", contracts.RedactURL(f.cfg.MQTTURL))
	for _, d := range f.devices {
		d.opMu.Lock()
		d.start()
		d.opMu.Unlock()
	}
	pingCtx, stopPings := context.WithCancel(context.Background())
	var pinger sync.WaitGroup
	pinger.Go(func() { f.pinger(pingCtx) })
	f.setState(stateRunning)
	<-ctx.Done()
	f.setState(stateStopping)
	stopPings()
	pinger.Wait()
	f.stopAll()
	f.setState(stateDone)
	f.log.Info("fleet stopped", "devices", len(f.devices))
	return nil
}

// maxStopping bounds the devices going offline at once when a fleet
// stops, so that 60,000 goodbyes queue up instead of 60,000 goroutines
// publishing together.
const maxStopping = 256

// stopAll takes every device offline gracefully.
func (f *Fleet) stopAll() {
	slots := make(chan struct{}, maxStopping)
	var wg sync.WaitGroup
	for _, d := range f.devices {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			d.opMu.Lock()
			defer d.opMu.Unlock()
			d.stop()
		})
	}
	wg.Wait()
}

func (f *Fleet) setState(to fleetState) {
	f.mu.Lock()
	f.state = to
	f.mu.Unlock()
	f.changed()
}

// changed wakes WaitOnline.
func (f *Fleet) changed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	close(f.change)
	f.change = make(chan struct{})
}

// WaitOnline waits until the fleet runs and every device not taken offline
// with GoOffline is connected and has announced its presence. It fails when
// ctx ends first or the fleet stops.
func (f *Fleet) WaitOnline(ctx context.Context) error {
	for {
		f.mu.Lock()
		state, change := f.state, f.change
		f.mu.Unlock()
		if state > stateRunning {
			return ErrNotRunning
		}
		if state == stateRunning && f.allOnline() {
			return nil
		}
		select {
		case <-change:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the devices to come online: %w", ctx.Err())
		}
	}
}

func (f *Fleet) allOnline() bool { return f.online.Load() == f.wanted.Load() }

// GoOffline takes one device offline gracefully, as a device being switched
// off would: work in progress is cut short, the retained presence says
// offline, the connection closes cleanly (no last will). It returns once
// all of that is done. Its key memory survives for GoOnline.
func (f *Fleet) GoOffline(id string) error {
	d, err := f.running(id)
	if err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	if !d.wantsOnline() {
		return fmt.Errorf("device %s is already offline", id)
	}
	d.stop()
	return nil
}

// GoOnline brings back a device taken offline with GoOffline. It returns at
// once; the device connects in the background (see WaitOnline).
func (f *Fleet) GoOnline(id string) error {
	d, ok := f.byID[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownDevice, id)
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	// Checked under opMu: Run stops each device under it after leaving
	// the running state, so a device started here is always stopped.
	if _, err := f.running(id); err != nil {
		return err
	}
	if d.wantsOnline() {
		return fmt.Errorf("device %s is already online", id)
	}
	d.start()
	return nil
}

func (f *Fleet) running(id string) (*device, error) {
	d, ok := f.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownDevice, id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != stateRunning {
		return nil, ErrNotRunning
	}
	return d, nil
}

// Stats returns what every device has done so far, and the totals.
func (f *Fleet) Stats() Stats {
	s := Stats{Seed: f.cfg.Seed, Devices: make([]DeviceStats, len(f.devices))}
	for i, d := range f.devices {
		c := d.stats.snapshot()
		online := d.online()
		s.Devices[i] = DeviceStats{ID: d.id, Online: online, Counters: c}
		s.Totals.add(c)
		if online {
			s.Online++
		}
	}
	return s
}

// login is the user name and password a device logs in with: its id and
// its secret (when Config.Secret gives one), or else the login of the
// fleet's URL.
func (f *Fleet) login(id string) (user, pass string) {
	if f.cfg.Secret == nil {
		return f.links.user, f.links.pass
	}
	return id, f.cfg.Secret(id)
}

// newLinkShared is what every device's link shares, from cfg (validated).
func newLinkShared(cfg Config, log *slog.Logger) (*linkShared, error) {
	u, err := url.Parse(cfg.MQTTURL)
	if err != nil {
		return nil, err
	}
	sh := &linkShared{
		topics:      func(id string) (string, string) { return contracts.CommandsFilter(id), contracts.PresenceTopic(id) },
		willPayload: presenceOffline,
		addr:        u.Host,
		keepAlive:   cfg.KeepAlive,
		timeout:     linkTimeout,
		maxBackoff:  cfg.MaxBackoff,
		handshakes:  make(chan struct{}, maxHandshakes),
		report:      newReporter(log, linkReportEvery).report,
	}
	if sh.maxBackoff == 0 {
		sh.maxBackoff = defaultMaxBackoff
	}
	if u.User != nil {
		sh.user = u.User.Username()
		sh.pass, _ = u.User.Password()
	}
	if mqttlink.TLSScheme(u.Scheme) {
		tc, err := cfg.MQTTTLS.Load(mqttlink.SettingsTLS)
		if err != nil {
			return nil, err
		}
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12} // the system's trust store
		}
		tc = tc.Clone()
		tc.ServerName = u.Hostname()
		sh.tls, sh.tlsReport = tc, linktls.NewReporter(log, mqttlink.SettingsTLS)
	}
	return sh, nil
}

// Timings of the links.
const (
	linkTimeout       = 5 * time.Second // dial and handshake, a write, a PINGRESP
	defaultMaxBackoff = 5 * time.Second // mqttlink's default
	linkReportEvery   = 5 * time.Second // at most one line about failed connections per period
)
