package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/buger/jsonparser"

	"cafe/cmd/internal/appclient"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/devicesim"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// session is what every phase of one invocation shares: the HTTP client,
// the simulated fleet, the subscription to the app's results, and the
// phases themselves, so that a result is routed to the phase whose id it
// carries.
type session struct {
	cfg     Config
	run     string // random per invocation; the first part of every id
	clock   Clock
	parts   requestParts
	http    *http.Client
	devices []string
	urls    []string // submit URL of each device
	log     *slog.Logger

	fleet      *devicesim.Fleet
	stopFleet  context.CancelFunc
	fleetDone  chan error
	link       *mqttlink.Link
	stopLink   func()
	unregister func() error // removes the devices RegisterDevices registered

	cpu    *cpuMeter    // nil: CPU per command not measured
	ledger *ledgerMeter // nil: the ledger not measured

	mu      sync.RWMutex
	phases  []*phase
	foreign atomic.Int64 // results on the topic that are not this bench's
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newSession(cfg Config) (*session, error) {
	tc, err := cfg.httpsTrust()
	if err != nil {
		return nil, err
	}
	s := &session{
		cfg:   cfg,
		run:   newRunID(),
		clock: wallClock{},
		parts: newRequestParts(cfg.Method, cfg.PayloadBytes),
		log:   slog.New(slog.DiscardHandler),
	}
	s.http = &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        cfg.HTTPWorkers,
			MaxIdleConnsPerHost: cfg.HTTPWorkers,
			MaxConnsPerHost:     cfg.HTTPWorkers,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			TLSClientConfig:     tc,
		},
		Timeout: 30 * time.Second, // the cashier answers 503 after its confirm timeout (5s)
	}
	pattern := "bench-" + s.run + "-%d"
	for i := 1; i <= cfg.Devices; i++ {
		id := fmt.Sprintf(pattern, i)
		u, err := url.JoinPath(cfg.URL, "v1", "devices", id, "commands")
		if err != nil {
			return nil, fmt.Errorf("--url %q: %w", cfg.URL, err)
		}
		s.devices = append(s.devices, id)
		s.urls = append(s.urls, u)
	}
	return s, nil
}

// start brings up the fleet and subscribes to the app's results (QoS 1),
// before anything is submitted. Cashier-only needs neither.
func (s *session) start(ctx context.Context) error {
	if s.cfg.CashierOnly {
		return nil
	}
	fleetCfg := devicesim.Config{
		MQTTURL:   s.cfg.MQTTURL,
		MQTTTLS:   s.cfg.MQTTTLS,
		Count:     s.cfg.Devices,
		Pattern:   "bench-" + s.run + "-%d",
		First:     1,
		Latency:   s.cfg.DeviceLatency,
		KeyMemory: max(devicesim.DefaultKeyMemory, s.cfg.Devices),
	}
	if s.cfg.RegisterDevices != nil {
		secret, unregister, err := s.cfg.RegisterDevices(s.devices)
		if err != nil {
			return fmt.Errorf("register the simulated devices: %w", err)
		}
		fleetCfg.Secret, s.unregister = secret, unregister
		if err := s.waitKnown(ctx); err != nil {
			return err
		}
	}
	fleet, err := devicesim.New(fleetCfg, s.log)
	if err != nil {
		return fmt.Errorf("simulated devices: %w", err)
	}
	fctx, stop := context.WithCancel(context.Background())
	s.fleet, s.stopFleet, s.fleetDone = fleet, stop, make(chan error, 1)
	go func() { s.fleetDone <- fleet.Run(fctx) }()

	link, err := s.appLink(ctx)
	if err != nil {
		return err
	}
	s.link, s.stopLink = link, link.Background()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := link.Subscribe(wctx, contracts.ResultsTopic(s.cfg.ClientID), 1, s.onResult); err != nil {
		return fmt.Errorf("subscribe to %s: %w", contracts.ResultsTopic(s.cfg.ClientID), err)
	}
	if err := link.WaitConnected(wctx); err != nil {
		return fmt.Errorf("cannot reach the MQTT broker at %s to receive results: %w", contracts.RedactURL(s.cfg.MQTTURL), err)
	}
	if err := fleet.WaitOnline(wctx); err != nil {
		return fmt.Errorf("%d simulated devices: %w", s.cfg.Devices, err)
	}
	return nil
}

// close stops the fleet, clears the retained presence its devices left on
// the broker (so runs leave nothing behind), and disconnects.
func (s *session) close() {
	if s.fleet != nil {
		s.stopFleet()
		<-s.fleetDone
		if s.link != nil {
			s.clearPresence()
		}
	}
	if s.link != nil {
		s.stopLink()
	}
	if s.unregister != nil {
		if err := s.unregister(); err != nil {
			s.log.Warn("could not remove the bench's devices from the registry", "err", err)
		}
	}
	s.http.CloseIdleConnections()
}

// appLink is the bench's MQTT link as the app: its session's credentials
// (POST /v1/sessions), on the bench's broker URL.
func (s *session) appLink(ctx context.Context) (*mqttlink.Link, error) {
	sess, err := appclient.Fetch(ctx, s.http, s.cfg.URL, s.cfg.Token)
	if err != nil {
		return nil, err
	}
	if s.cfg.ClientID != sess.ClientID {
		return nil, fmt.Errorf("%s %s, but the token belongs to client %s", SettingClientID, s.cfg.ClientID, sess.ClientID)
	}
	cfg, err := sess.MQTT(s.cfg.MQTTURL, true)
	if err != nil {
		return nil, err
	}
	cfg.TLS = s.cfg.MQTTTLS
	return mqttlink.New(cfg, s.log)
}

// waitKnown waits until the cashier has loaded the registry with the
// bench's devices (it watches the file): a one-way command that expires at
// once is refused with 404 until then, and never reaches a device.
func (s *session) waitKnown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, u := range []string{s.urls[0], s.urls[len(s.urls)-1]} {
		for {
			status, err := s.probe(ctx, u)
			if err == nil && status == http.StatusAccepted {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the cashier at %s still does not know the bench's devices (last answer %d, %v): is it watching the registry the bench wrote to?", s.cfg.URL, status, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func (s *session) probe(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","method":"bench.probe"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	req.Header.Set("Cafe-Timeout", "1ms")
	res, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	return res.StatusCode, nil
}

func (s *session) clearPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// As cafe-ops: an app may not write presence (and the bench's app link
	// is the app's).
	ops, err := mqttlink.New(mqttlink.Config{URL: cli.WithRole(s.cfg.MQTTURL, mqttlink.DefaultURL, identity.Ops), ClientID: "cafe-bench-clear-" + s.run, CleanSession: true, TLS: s.cfg.MQTTTLS}, s.log)
	if err != nil {
		s.log.Warn("cannot clear the simulated devices' presence", "err", err)
		return
	}
	defer ops.Background()()
	ids := make(chan string)
	var wg sync.WaitGroup
	for range min(64, len(s.devices)) {
		wg.Go(func() {
			for id := range ids {
				_ = ops.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(id), QoS: 1, Retained: true})
			}
		})
	}
	for _, id := range s.devices {
		ids <- id
	}
	close(ids)
	wg.Wait()
}

// newPhase registers a phase, so results can find it.
func (s *session) newPhase(spec phaseSpec) *phase {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := newPhase(s, len(s.phases), spec)
	s.phases = append(s.phases, p)
	return p
}

// measure runs one phase and reports it.
func (s *session) measure(ctx context.Context, spec phaseSpec) *PhaseReport {
	p := s.newPhase(spec)
	ledgerBefore := s.ledger.sample(ctx)
	before := s.cpu.sample()
	p.run(ctx)
	after := s.cpu.sample()
	r := p.report()
	r.CPUCommands = p.completed()
	r.CPU = s.cpu.perCommand(before, after, r.CPUCommands)
	if !spec.CashierOnly {
		r.Ledger = ledgerReport(ledgerBefore, s.ledger.settled(ctx), r.CPUCommands)
	}
	return r
}

// onResult is the MQTT handler of the results topic. It never blocks.
func (s *session) onResult(_ string, payload []byte) {
	at := s.clock.Now()
	var id []byte
	var code int64
	jsonparser.EachKey(payload, func(idx int, value []byte, vt jsonparser.ValueType, _ error) {
		switch idx {
		case 0:
			if vt == jsonparser.String {
				id = value
			}
		case 1:
			code, _ = jsonparser.ParseInt(value)
		}
	}, []string{"id"}, []string{"error", "code"})
	ph, seq, ok := parseCommandID(s.run, id)
	s.mu.RLock()
	var p *phase
	if ok && ph < len(s.phases) {
		p = s.phases[ph]
	}
	s.mu.RUnlock()
	if p == nil {
		s.foreign.Add(1)
		return
	}
	p.onResult(seq, at, code)
}

// post submits one body for device dev and classifies the answer: 202, or
// an HTTP status or statusTransport with its key in the errors table.
func (s *session) post(ctx context.Context, dev int, body []byte) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[dev], bytes.NewReader(body))
	if err != nil {
		return statusTransport, "request: " + err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cafe-Timeout", s.cfg.Timeout.String())
	res, err := s.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return statusTransport, "interrupted"
		}
		return statusTransport, transportKey(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode == http.StatusAccepted {
		return res.StatusCode, ""
	}
	return res.StatusCode, httpKey(res.StatusCode)
}

// transportKey names a failed HTTP call without the URL, so that equal
// failures count together.
func transportKey(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "http: timeout"
	}
	return "http: " + err.Error()
}

// progressLoop prints p's progress once a second until stopped, and a last
// line when stopped.
func (s *session) progressLoop(p *phase) (stop func()) {
	if s.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintln(s.cfg.Progress, p.progress(s.clock.Now()))
				return
			case now := <-t.C:
				fmt.Fprintln(s.cfg.Progress, p.progress(now))
			}
		}
	}()
	return func() { close(done); <-finished }
}
