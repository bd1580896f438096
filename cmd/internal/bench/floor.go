package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// FloorReport is what the brokers alone achieve with the pipeline's message
// size, measured with the pipeline's own client code (amqplink, mqttlink)
// on the same brokers, just before the pipeline run.
type FloorReport struct {
	MessageBytes  int       `json:"message_bytes"`
	InFlight      int       `json:"in_flight"`
	AMQP          AMQPFloor `json:"amqp"`
	MQTT          MQTTFloor `json:"mqtt"`
	DeviceLatency float64   `json:"device_latency_ms"` // added to the sum: the device's own time is not the pipeline's
	SumP50        float64   `json:"sum_p50_ms"`        // Σ over the hops of their p50, plus the device latency
	SeriesRate    float64   `json:"series_rate_per_s"` // 1/Σ(1/rate) over the hops
}

// AMQPFloor is one AMQP hop: publish with confirm to a quorum queue with
// the pipeline's arguments, consume with manual ack.
type AMQPFloor struct {
	Queue          string      `json:"queue"`
	PublishPerS    float64     `json:"publish_confirm_per_s"` // publish and confirm only (no consumer), InFlight unconfirmed at once
	HopPerS        float64     `json:"hop_per_s"`             // published, confirmed, consumed and acked, InFlight not yet consumed at once
	Lone           Percentiles `json:"lone"`                  // one at a time: publish → delivered to the consumer
	LoneConfirm    Percentiles `json:"lone_confirm"`          // one at a time: publish → confirm
	PublishSeconds float64     `json:"publish_s"`
	HopSeconds     float64     `json:"hop_s"`
}

// MQTTFloor is an MQTT QoS 1 round trip between two clients: A publishes,
// B receives and publishes it back, A receives.
type MQTTFloor struct {
	RoundTripPerS float64     `json:"round_trip_per_s"` // InFlight round trips at once
	Lone          Percentiles `json:"lone_round_trip"`  // one at a time
	Seconds       float64     `json:"s"`
}

// floorWarmup is how many lone samples are sent and not recorded.
const floorWarmup = 10

func measureFloor(ctx context.Context, cfg Config, run string, progress func(string)) (*FloorReport, error) {
	size := cfg.PayloadBytes
	f := &FloorReport{MessageBytes: size, InFlight: FloorInFlight, DeviceLatency: ms(cfg.DeviceLatency)}
	var err error
	progress("floor: AMQP publish with confirms to a private quorum queue, then consume/ack")
	if f.AMQP, err = measureAMQP(ctx, cfg, run, size); err != nil {
		return nil, fmt.Errorf("AMQP floor: %w", err)
	}
	progress(fmt.Sprintf("floor: AMQP publish+confirm %.0f/s, hop %.0f/s, lone p50 %s", f.AMQP.PublishPerS, f.AMQP.HopPerS, fmtMS(f.AMQP.Lone.P50)))
	progress("floor: MQTT QoS 1 round trips between two clients")
	if f.MQTT, err = measureMQTT(ctx, cfg, run, size); err != nil {
		return nil, fmt.Errorf("MQTT floor: %w", err)
	}
	progress(fmt.Sprintf("floor: MQTT round trip %.0f/s, lone p50 %s", f.MQTT.RoundTripPerS, fmtMS(f.MQTT.Lone.P50)))
	var inv float64
	for _, h := range hops(f) {
		f.SumP50 += h.FloorP50
		inv += 1 / h.FloorRate
	}
	f.SumP50 += f.DeviceLatency
	if inv > 0 {
		f.SeriesRate = 1 / inv
	}
	return f, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func measureAMQP(ctx context.Context, cfg Config, run string, size int) (AMQPFloor, error) {
	log := slog.New(slog.DiscardHandler)
	top := contracts.DefaultTopology()
	top.Prefix = "bench-floor-" + run
	top.CommandsMaxLength = 0 // the publish-only floor may outgrow the default capacity
	out := AMQPFloor{Queue: top.CommandsQueue()}

	pubLink, err := amqplink.New(amqplink.Config{URL: cfg.AMQPURL, Topology: top, Name: "cafe-bench-floor-publish"}, log)
	if err != nil {
		return out, err
	}
	conLink, err := amqplink.New(amqplink.Config{URL: cfg.AMQPURL, Topology: top, Name: "cafe-bench-floor-consume"}, log)
	if err != nil {
		return out, err
	}
	pub := amqplink.NewPublisher(pubLink, log)
	lctx, stopLinks := context.WithCancel(context.Background())
	var links sync.WaitGroup
	links.Go(func() { _ = pubLink.Run(lctx) })
	links.Go(func() { _ = conLink.Run(lctx) })
	links.Go(func() { _ = pub.Run(lctx) })
	defer func() {
		deleteTopology(cfg.AMQPURL, top) // before the links go: nothing may redeclare it after
		stopLinks()
		links.Wait()
	}()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	err = pub.WaitReady(wctx)
	cancel()
	if err != nil {
		return out, fmt.Errorf("no confirm-mode channel to RabbitMQ at %s: %w", cfg.AMQPURL, err)
	}

	body := make([]byte, size)
	for i := range body {
		body[i] = 'x'
	}
	publish := func(ctx context.Context) error {
		now := time.Now()
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "bench", DeviceID: "bench-floor",
			MsgID: `"x"`, Deadline: now.Add(cfg.Timeout), AcceptedAt: now}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return pub.Publish(pctx, top.CommandsExchange(), contracts.RoutingKeyCommand, amqp.Publishing{
			MessageId: meta.CommandID, ContentType: contracts.ContentTypeJSON, Timestamp: now,
			Headers: meta.Headers(), Body: body,
		})
	}

	// 1. Publish with confirms, no consumer: what the cashier does.
	var confirmed atomic.Int64
	var failed firstErr
	elapsed := forDuration(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, _ int) bool {
		if err := publish(ctx); err != nil {
			if ctx.Err() == nil {
				failed.set(err)
			}
			return false
		}
		confirmed.Add(1)
		return true
	})
	if err := failed.get(); err != nil {
		return out, err
	}
	out.PublishPerS, out.PublishSeconds = perSecond(int(confirmed.Load()), elapsed), elapsed.Seconds()
	if err := purge(ctx, pubLink, top.CommandsQueue()); err != nil {
		return out, err
	}

	// 2. Consume with manual acks, as a barista does (prefetch = InFlight).
	var consumed atomic.Int64
	slots := make(chan struct{}, FloorInFlight) // published, not yet consumed
	delivered := make(chan time.Time, 1)
	cctx, stopConsumer := context.WithCancel(ctx)
	consumerDone := make(chan struct{})
	go func() {
		defer close(consumerDone)
		_ = conLink.Consume(cctx, amqplink.ConsumerConfig{Queue: top.CommandsQueue(), Tag: "bench-floor", Concurrency: FloorInFlight, Grace: time.Second}, log,
			func(_ context.Context, d *amqp.Delivery) amqplink.Verdict {
				at := time.Now()
				consumed.Add(1)
				select {
				case <-slots:
				default:
				}
				select {
				case delivered <- at:
				default:
				}
				return amqplink.Done()
			})
	}()
	defer func() { stopConsumer(); <-consumerDone }()

	// 2a. One at a time.
	lone, loneConfirm := newHist(), newHist()
	for i := range cfg.LoneCount + floorWarmup {
		select {
		case <-delivered: // a stale signal
		default:
		}
		start := time.Now()
		if err := publish(ctx); err != nil {
			return out, err
		}
		confirmedAt := time.Now()
		var at time.Time
		select {
		case at = <-delivered:
		case <-time.After(10 * time.Second):
			return out, errors.New("a published message was not delivered within 10s")
		case <-ctx.Done():
			return out, ctx.Err()
		}
		if i >= floorWarmup {
			record(lone, at.Sub(start))
			record(loneConfirm, confirmedAt.Sub(start))
		}
	}
	out.Lone, out.LoneConfirm = percentiles(lone), percentiles(loneConfirm)

	// 2b. Throughput through the hop, InFlight not yet consumed at once.
	base := consumed.Load()
	elapsed = forDuration(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, _ int) bool {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		if err := publish(ctx); err != nil {
			if ctx.Err() == nil {
				failed.set(err)
			}
			return false
		}
		return true
	})
	if err := failed.get(); err != nil {
		return out, err
	}
	out.HopPerS, out.HopSeconds = perSecond(int(consumed.Load()-base), elapsed), elapsed.Seconds()
	return out, nil
}

// forDuration runs n workers, each calling step with its index until d has
// passed (or step returns false), and returns the time it took.
func forDuration(ctx context.Context, d time.Duration, n int, step func(ctx context.Context, worker int) bool) time.Duration {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for ctx.Err() == nil && step(ctx, w) {
			}
		})
	}
	<-ctx.Done()
	elapsed := time.Since(start)
	wg.Wait()
	return elapsed
}

func purge(ctx context.Context, link *amqplink.Link, queue string) error {
	ch, err := link.Channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueuePurge(queue, false); err != nil {
		return fmt.Errorf("purge %s: %w", queue, err)
	}
	return nil
}

// deleteTopology removes the floor's private queues and exchanges.
func deleteTopology(amqpURL string, top contracts.Topology) {
	conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return
	}
	defer conn.Close()
	queues, exchanges := topologyNames(top)
	for _, q := range queues {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
	}
	for _, e := range exchanges {
		if ch, err := conn.Channel(); err == nil {
			_ = ch.ExchangeDelete(e, false, false)
			_ = ch.Close()
		}
	}
}

// topologyNames lists every queue and exchange of top: what its methods
// named …Queue and …Exchange return. AMQP cannot list queues by prefix, and
// the topology grows (dead.notify came later): asking the type itself
// keeps the floor from leaving a new queue behind.
func topologyNames(top contracts.Topology) (queues, exchanges []string) {
	v := reflect.ValueOf(top)
	for i := range v.NumMethod() {
		m, name := v.Method(i), v.Type().Method(i).Name
		if m.Type().NumIn() != 0 || m.Type().NumOut() != 1 || m.Type().Out(0).Kind() != reflect.String {
			continue
		}
		switch {
		case strings.HasSuffix(name, "Queue"):
			queues = append(queues, m.Call(nil)[0].String())
		case strings.HasSuffix(name, "Exchange"):
			exchanges = append(exchanges, m.Call(nil)[0].String())
		}
	}
	return queues, exchanges
}

// measureMQTT runs QoS 1 round trips between two clients on the broker.
func measureMQTT(ctx context.Context, cfg Config, run string, size int) (MQTTFloor, error) {
	var out MQTTFloor
	log := slog.New(slog.DiscardHandler)
	ping, pong := "bench/"+run+"/ping", "bench/"+run+"/pong"
	a, err := mqttlink.New(mqttlink.Config{URL: cfg.MQTTURL, ClientID: "cafe-bench-floor-a-" + run, CleanSession: true}, log)
	if err != nil {
		return out, err
	}
	b, err := mqttlink.New(mqttlink.Config{URL: cfg.MQTTURL, ClientID: "cafe-bench-floor-b-" + run, CleanSession: true}, log)
	if err != nil {
		return out, err
	}
	bctx, stopEchoes := context.WithCancel(context.Background())
	var (
		echoes  sync.WaitGroup
		echoMu  sync.Mutex
		stopped bool // no echo starts once the measurement is over
	)
	stopA, stopB := a.Background(), b.Background()
	defer func() {
		echoMu.Lock()
		stopped = true
		echoMu.Unlock()
		stopEchoes()
		echoes.Wait()
		stopA()
		stopB()
	}()

	// B answers each ping on the pong topic, in a goroutine of its own as
	// a device does (a handler must not block).
	if err := b.Subscribe(ctx, ping, 1, func(_ string, p []byte) {
		msg := mqttlink.Message{Topic: pong, Payload: append([]byte(nil), p...), QoS: 1}
		echoMu.Lock()
		defer echoMu.Unlock()
		if stopped {
			return
		}
		echoes.Go(func() {
			pctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			defer cancel()
			_ = b.Publish(pctx, msg)
		})
	}); err != nil {
		return out, err
	}
	// The first 12 bytes of a payload: worker (4) and sequence (8).
	waiters := make([]chan uint64, FloorInFlight)
	for i := range waiters {
		waiters[i] = make(chan uint64, 1)
	}
	if err := a.Subscribe(ctx, pong, 1, func(_ string, p []byte) {
		if len(p) < 12 {
			return
		}
		if w := binary.BigEndian.Uint32(p); int(w) < len(waiters) {
			select {
			case waiters[w] <- binary.BigEndian.Uint64(p[4:]):
			default:
			}
		}
	}); err != nil {
		return out, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := a.WaitConnected(wctx); err != nil {
		return out, fmt.Errorf("MQTT broker at %s: %w", contracts.RedactURL(cfg.MQTTURL), err)
	}
	if err := b.WaitConnected(wctx); err != nil {
		return out, fmt.Errorf("MQTT broker at %s: %w", contracts.RedactURL(cfg.MQTTURL), err)
	}

	var seq atomic.Uint64
	roundTrip := func(ctx context.Context, w int) (time.Duration, error) {
		n := seq.Add(1)
		p := make([]byte, max(size, 12))
		binary.BigEndian.PutUint32(p, uint32(w))
		binary.BigEndian.PutUint64(p[4:], n)
		for i := 12; i < len(p); i++ {
			p[i] = 'x'
		}
		start := time.Now()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := a.Publish(pctx, mqttlink.Message{Topic: ping, Payload: p, QoS: 1}); err != nil {
			return 0, err
		}
		for {
			select {
			case got := <-waiters[w]:
				if got == n {
					return time.Since(start), nil
				}
			case <-pctx.Done():
				return 0, fmt.Errorf("no echo within 10s: %w", pctx.Err())
			}
		}
	}

	lone := newHist()
	for i := range cfg.LoneCount + floorWarmup {
		d, err := roundTrip(ctx, 0)
		if err != nil {
			return out, err
		}
		if i >= floorWarmup {
			record(lone, d)
		}
	}
	out.Lone = percentiles(lone)

	var done atomic.Int64
	var failed firstErr
	elapsed := forDuration(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, w int) bool {
		if _, err := roundTrip(ctx, w); err != nil {
			if ctx.Err() == nil {
				failed.set(err)
			}
			return false
		}
		done.Add(1)
		return true
	})
	if err := failed.get(); err != nil {
		return out, err
	}
	out.RoundTripPerS, out.Seconds = perSecond(int(done.Load()), elapsed), elapsed.Seconds()
	return out, nil
}

// firstErr keeps the first error that workers report.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}
