package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
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

// oneAtATime calls sample count+floorWarmup times, one after the other,
// telling it whether the sample counts (the first floorWarmup do not); it
// stops at the first error.
func oneAtATime(count int, sample func(measured bool) error) error {
	for i := range count + floorWarmup {
		if err := sample(i >= floorWarmup); err != nil {
			return err
		}
	}
	return nil
}

// inFlight runs step on n workers, each over and over until d has passed
// or its step fails, and returns how many steps succeeded, how long it
// ran, and the first failure that was not the time running out.
func inFlight(ctx context.Context, d time.Duration, n int, step func(ctx context.Context, worker int) error) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		done   atomic.Int64
		failed firstErr
		wg     sync.WaitGroup
	)
	start := time.Now()
	for w := range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := step(ctx, w); err != nil {
					if ctx.Err() == nil {
						failed.set(err)
					}
					return
				}
				done.Add(1)
			}
		})
	}
	<-ctx.Done()
	elapsed := time.Since(start)
	wg.Wait()
	return int(done.Load()), elapsed, failed.get()
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
