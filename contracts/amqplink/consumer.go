package amqplink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const backoffStep = 500 * time.Millisecond

// Handler processes one delivery and settles it (Ack, Nack or Reject) itself;
// the role that consumes owns its ack policy. ctx is cancelled when the
// consumer's grace period after shutdown runs out: a handler still busy then
// must give the delivery back (or just return: an unsettled delivery goes
// back to the queue when the channel closes).
type Handler func(ctx context.Context, d *amqp.Delivery)

// ConsumerConfig says what to consume and how much at once.
type ConsumerConfig struct {
	Queue       string
	Tag         string        // consumer tag prefix, for rabbitmqctl list_consumers
	Concurrency int           // deliveries handled at once; also the prefetch count
	Grace       time.Duration // after ctx is done, how long handlers may finish what they hold
}

// Consume delivers messages from cfg.Queue to h on cfg.Concurrency workers
// until ctx is done. It re-opens its channel (and re-declares the topology)
// whenever the channel or connection drops, so it outlives broker restarts.
//
// Shutdown: when ctx is done it cancels the consumer (nothing new arrives),
// lets the handlers finish for up to cfg.Grace, then cancels their context,
// waits for them, and closes the channel, which returns every delivery not
// settled to the queue. It returns once all of that is done.
func (l *Link) Consume(ctx context.Context, cfg ConsumerConfig, log *slog.Logger, h Handler) error {
	if cfg.Concurrency < 1 {
		return fmt.Errorf("consumer concurrency %d: want at least 1", cfg.Concurrency)
	}
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	work := make(chan *amqp.Delivery)
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for d := range work {
				h(hctx, d)
			}
		})
	}

	var last *amqp.Channel
	for ctx.Err() == nil {
		ch, deliveries, err := l.openConsumer(ctx, cfg)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("cannot consume; retrying", "queue", cfg.Queue, "err", err)
				sleep(ctx, backoffStep)
			}
			continue
		}
		if last != nil {
			_ = last.Close()
		}
		last = ch
		log.Info("consuming", "queue", cfg.Queue, "concurrency", cfg.Concurrency)
		forward(ctx, deliveries, work)
		if ctx.Err() == nil {
			log.Warn("consumer channel closed; re-opening", "queue", cfg.Queue)
		}
	}

	// Shutdown: stop the flow, give handlers their grace, then close.
	if last != nil {
		_ = last.Cancel(cfg.Tag, false)
	}
	close(work)
	finished := make(chan struct{})
	go func() { workers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(cfg.Grace):
		log.Warn("grace period over; returning unfinished deliveries to the queue", "queue", cfg.Queue, "grace", cfg.Grace)
		cancelHandlers()
		<-finished
	}
	if last != nil {
		_ = last.Close()
	}
	return nil
}

func (l *Link) openConsumer(ctx context.Context, cfg ConsumerConfig) (*amqp.Channel, <-chan amqp.Delivery, error) {
	ch, err := l.Channel(ctx)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (*amqp.Channel, <-chan amqp.Delivery, error) {
		_ = ch.Close()
		return nil, nil, err
	}
	// Re-declaring here heals a queue deleted under a running service.
	if err := Declare(ch, l.cfg.Topology); err != nil {
		return fail(err)
	}
	if err := ch.Qos(cfg.Concurrency, 0, false); err != nil {
		return fail(fmt.Errorf("set prefetch: %w", err))
	}
	deliveries, err := ch.Consume(cfg.Queue, cfg.Tag, false, false, false, false, nil)
	if err != nil {
		return fail(fmt.Errorf("consume %s: %w", cfg.Queue, err))
	}
	return ch, deliveries, nil
}

// forward hands deliveries to the workers until the delivery channel closes
// (channel or connection gone, or the broker cancelled the consumer) or ctx
// is done. A delivery read but not handed over when ctx ends stays
// unsettled and goes back to the queue when the channel closes.
func forward(ctx context.Context, deliveries <-chan amqp.Delivery, work chan<- *amqp.Delivery) {
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			select {
			case work <- &d:
			case <-ctx.Done():
				return
			}
		}
	}
}
