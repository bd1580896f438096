package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"cafe/cmd/internal/cli"
	"cafe/contracts"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// mqttFloor is the MQTT hop measured alone: client a publishes pings, and
// client b echoes each back as a pong, as a device answers a command.
type mqttFloor struct {
	size       int
	ping, pong string
	a          *mqttlink.Link
	pongs      pongs
	echo       *echoer
	seq        atomic.Uint64
	stopA      func()
	stopB      func()
}

// measureMQTT runs QoS 1 round trips between two clients on the broker.
func measureMQTT(ctx context.Context, cfg Config, run string, size int) (MQTTFloor, error) {
	var out MQTTFloor
	f, err := startMQTTFloor(ctx, cfg, run, size)
	if err != nil {
		return out, err
	}
	defer f.close()
	lone := newHist()
	err = oneAtATime(cfg.LoneCount, func(measured bool) error {
		d, err := f.roundTrip(ctx, 0)
		if err == nil && measured {
			record(lone, d)
		}
		return err
	})
	if err != nil {
		return out, err
	}
	out.Lone = percentiles(lone)
	n, elapsed, err := inFlight(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, w int) error {
		_, err := f.roundTrip(ctx, w)
		return err
	})
	if err != nil {
		return out, err
	}
	out.RoundTripPerS, out.Seconds = perSecond(n, elapsed), elapsed.Seconds()
	return out, nil
}

// startMQTTFloor connects both clients, with b echoing a's pings and a
// routing the pongs to their senders.
func startMQTTFloor(ctx context.Context, cfg Config, run string, size int) (*mqttFloor, error) {
	log := slog.New(slog.DiscardHandler)
	f := &mqttFloor{size: size, ping: "bench/" + run + "/ping", pong: "bench/" + run + "/pong", pongs: newPongs(FloorInFlight)}
	a, err := mqttlink.New(mqttlink.Config{URL: cli.WithRole(cfg.MQTTURL, mqttlink.DefaultURL, identity.Ops), ClientID: "cafe-bench-floor-a-" + run, CleanSession: true, TLS: cfg.MQTTTLS}, log)
	if err != nil {
		return nil, err
	}
	b, err := mqttlink.New(mqttlink.Config{URL: cli.WithRole(cfg.MQTTURL, mqttlink.DefaultURL, identity.Ops), ClientID: "cafe-bench-floor-b-" + run, CleanSession: true, TLS: cfg.MQTTTLS}, log)
	if err != nil {
		return nil, err
	}
	f.a, f.echo = a, newEchoer(b, f.pong)
	f.stopA, f.stopB = a.Background(), b.Background()
	if err := f.connect(ctx, cfg, b); err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

// connect subscribes both clients and waits until both are connected.
func (f *mqttFloor) connect(ctx context.Context, cfg Config, b *mqttlink.Link) error {
	if err := b.Subscribe(ctx, f.ping, 1, f.echo.handle); err != nil {
		return err
	}
	if err := f.a.Subscribe(ctx, f.pong, 1, f.pongs.handle); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for _, l := range []*mqttlink.Link{f.a, b} {
		if err := l.WaitConnected(wctx); err != nil {
			return fmt.Errorf("MQTT broker at %s: %w", contracts.RedactURL(cfg.MQTTURL), err)
		}
	}
	return nil
}

// close stops the echoes, then both clients.
func (f *mqttFloor) close() {
	f.echo.stop()
	f.stopA()
	f.stopB()
}

// roundTrip sends one ping for worker w and waits for its pong.
func (f *mqttFloor) roundTrip(ctx context.Context, w int) (time.Duration, error) {
	n := f.seq.Add(1)
	p := make([]byte, max(f.size, 12))
	binary.BigEndian.PutUint32(p, uint32(w))
	binary.BigEndian.PutUint64(p[4:], n)
	for i := 12; i < len(p); i++ {
		p[i] = 'x'
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := f.a.Publish(pctx, mqttlink.Message{Topic: f.ping, Payload: p, QoS: 1}); err != nil {
		return 0, err
	}
	for {
		select {
		case got := <-f.pongs[w]:
			if got == n {
				return time.Since(start), nil
			}
		case <-pctx.Done():
			return 0, fmt.Errorf("no echo within 10s: %w", pctx.Err())
		}
	}
}

// pongs hands each pong to the worker that sent its ping: the first 12
// bytes of a payload are the worker (4) and its sequence number (8).
type pongs []chan uint64

func newPongs(workers int) pongs {
	ps := make(pongs, workers)
	for i := range ps {
		ps[i] = make(chan uint64, 1)
	}
	return ps
}

func (ps pongs) handle(_ string, p []byte) {
	if len(p) < 12 {
		return
	}
	if w := binary.BigEndian.Uint32(p); int(w) < len(ps) {
		select {
		case ps[w] <- binary.BigEndian.Uint64(p[4:]):
		default:
		}
	}
}

// echoer publishes every message it is handed back on its topic, each
// from a goroutine of its own, as a device does (an MQTT handler must not
// block), until it is stopped.
type echoer struct {
	link    *mqttlink.Link
	topic   string
	ctx     context.Context
	cancel  context.CancelFunc
	mu      sync.Mutex
	stopped bool // no echo starts once the measurement is over
	echoes  sync.WaitGroup
}

func newEchoer(link *mqttlink.Link, topic string) *echoer {
	ctx, cancel := context.WithCancel(context.Background())
	return &echoer{link: link, topic: topic, ctx: ctx, cancel: cancel}
}

func (e *echoer) handle(_ string, p []byte) {
	msg := mqttlink.Message{Topic: e.topic, Payload: append([]byte(nil), p...), QoS: 1}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.echoes.Go(func() {
		pctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
		defer cancel()
		_ = e.link.Publish(pctx, msg)
	})
}

// stop lets no echo start, cancels those under way and waits for them.
func (e *echoer) stop() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	e.cancel()
	e.echoes.Wait()
}
