package amqplink

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
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
	// Gates are what the handlers need besides this link (the barista's
	// MQTT link, its results link): nothing is taken until all are ready,
	// and taking pauses while any is lost, so a consumer that cannot finish
	// its work leaves the queue to the others.
	Gates []Gate
}

// Gate tells a consumer when it may take work.
type Gate interface {
	// WaitReady returns when work may be taken, or with ctx's error.
	WaitReady(ctx context.Context) error
	// Lost returns a channel closed when work may no longer be taken.
	Lost() <-chan struct{}
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
		if waitGates(ctx, cfg.Gates) != nil {
			continue // ctx is done
		}
		if last == nil || last.IsClosed() {
			if last != nil {
				_ = last.Close()
			}
			ch, err := l.openChannel(ctx, cfg)
			if err != nil {
				last = nil
				if ctx.Err() == nil {
					log.Warn("cannot consume; retrying", "queue", cfg.Queue, "err", err)
					sleep(ctx, backoffStep)
				}
				continue
			}
			last = ch
		}
		deliveries, err := last.Consume(cfg.Queue, cfg.Tag, false, false, false, false, nil)
		if err != nil {
			log.Warn("cannot consume; retrying", "queue", cfg.Queue, "err", err)
			_ = last.Close()
			last = nil
			sleep(ctx, backoffStep)
			continue
		}
		log.Info("consuming", "queue", cfg.Queue, "concurrency", cfg.Concurrency)
		fctx, stopWatching := context.WithCancel(ctx)
		stopped := forward(ctx, deliveries, work, anyLost(fctx, cfg.Gates))
		stopWatching()
		switch stopped {
		case paused:
			// Keep the channel, so the deliveries in hand can still be
			// settled; stop the flow and give back what arrived meanwhile.
			log.Warn("pausing: handlers cannot work (gate lost); the queue is left to other consumers", "queue", cfg.Queue)
			if last.Cancel(cfg.Tag, false) == nil {
				for d := range deliveries {
					_ = d.Nack(false, true)
				}
			}
		case closed:
			if ctx.Err() == nil {
				log.Warn("consumer channel closed; re-opening", "queue", cfg.Queue)
			}
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

// openChannel opens a channel with the topology declared and the prefetch set.
func (l *Link) openChannel(ctx context.Context, cfg ConsumerConfig) (*amqp.Channel, error) {
	ch, err := l.Channel(ctx)
	if err != nil {
		return nil, err
	}
	// Re-declaring here heals a queue deleted under a running service.
	if err := Declare(ch, l.cfg.Topology); err != nil {
		_ = ch.Close()
		return nil, err
	}
	if err := ch.Qos(cfg.Concurrency, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("set prefetch: %w", err)
	}
	return ch, nil
}

// waitGates returns once every gate is ready at the same time, or with
// ctx's error.
func waitGates(ctx context.Context, gates []Gate) error {
	for {
		for _, g := range gates {
			if err := g.WaitReady(ctx); err != nil {
				return err
			}
		}
		if !isClosed(anyLostNow(gates)) {
			return nil
		}
	}
}

func anyLostNow(gates []Gate) <-chan struct{} {
	for _, g := range gates {
		if lost := g.Lost(); isClosed(lost) {
			return lost
		}
	}
	return nil
}

func isClosed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// anyLost returns a channel closed when any gate is lost; nil (never) for
// no gates. Its watcher ends with ctx.
func anyLost(ctx context.Context, gates []Gate) <-chan struct{} {
	switch len(gates) {
	case 0:
		return nil
	case 1:
		return gates[0].Lost()
	}
	lost := make(chan struct{})
	chans := make([]<-chan struct{}, len(gates))
	for i, g := range gates {
		chans[i] = g.Lost()
	}
	go func() {
		cases := make([]reflect.SelectCase, 0, len(chans)+1)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		for _, c := range chans {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
		}
		if i, _, _ := reflect.Select(cases); i > 0 {
			close(lost)
		}
	}()
	return lost
}

type stop int

const (
	closed stop = iota // the delivery channel closed (channel, connection or consumer gone) or ctx is done
	paused             // the gate was lost
)

// forward hands deliveries to the workers until the delivery channel closes
// (channel or connection gone, or the broker cancelled the consumer), ctx is
// done, or lost is closed. A delivery read but not handed over stays
// unsettled and goes back to the queue when the channel closes.
func forward(ctx context.Context, deliveries <-chan amqp.Delivery, work chan<- *amqp.Delivery, lost <-chan struct{}) stop {
	for {
		select {
		case <-ctx.Done():
			return closed
		case <-lost:
			return paused
		case d, ok := <-deliveries:
			if !ok {
				return closed
			}
			select {
			case work <- &d:
			case <-ctx.Done():
				return closed
			}
		}
	}
}
