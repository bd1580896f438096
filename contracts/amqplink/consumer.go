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

// Handler processes one delivery and returns its Verdict; the consumer
// settles the delivery from it (see Verdict). ctx is cancelled when the
// consumer's grace period after shutdown runs out: a handler still busy
// then must stop and return GiveBack.
type Handler func(ctx context.Context, d *amqp.Delivery) Verdict

// ConsumerConfig says what to consume and how much at once.
type ConsumerConfig struct {
	Queue       string
	Name        string        // the consumer's role ("barista", "caller"): a bounded label in logs and metrics
	Tag         string        // consumer tag, unique per process, for rabbitmqctl list_consumers
	Concurrency int           // deliveries handled at once; also the prefetch count
	Grace       time.Duration // after ctx is done, how long handlers may finish what they hold
	// Gates are what the handlers need besides this link (the barista's
	// MQTT link, its results link): nothing is taken until all are ready,
	// and taking pauses while any is lost, so a consumer that cannot finish
	// its work leaves the queue to the others.
	Gates []Gate
	// Metrics, if set, counts verdicts and failed settles.
	Metrics *ConsumerMetrics
}

// Gate tells a consumer when it may take work.
type Gate interface {
	// WaitReady returns when work may be taken, or with ctx's error.
	WaitReady(ctx context.Context) error
	// Lost returns a channel closed when work may no longer be taken.
	Lost() <-chan struct{}
}

// consumer is one running Consume.
type consumer struct {
	link *Link
	cfg  ConsumerConfig
	log  *slog.Logger
	h    Handler
	work chan delivery
	acks *acks // the current channel's
}

// delivery is one delivery on its way to a handler, with the acks of the
// channel it came on.
type delivery struct {
	d    *amqp.Delivery
	acks *acks
}

// Consume delivers messages from cfg.Queue to h on cfg.Concurrency workers
// until ctx is done, and settles each delivery from the Verdict h returns:
// this is the one place where cafe's ack policy is carried out. It re-opens
// its channel (and re-declares the topology) whenever the channel or
// connection drops, so it outlives broker restarts.
//
// Shutdown: when ctx is done it cancels the consumer (nothing new arrives),
// lets the handlers finish for up to cfg.Grace, then cancels their context,
// waits for them, and closes the channel, which returns every delivery not
// settled to the queue. It returns once all of that is done.
func (l *Link) Consume(ctx context.Context, cfg ConsumerConfig, log *slog.Logger, h Handler) error {
	if cfg.Concurrency < 1 {
		return fmt.Errorf("consumer concurrency %d: want at least 1", cfg.Concurrency)
	}
	c := &consumer{link: l, cfg: cfg, log: log, h: h, work: make(chan delivery)}
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for w := range c.work {
				c.handle(hctx, w)
			}
		})
	}
	var ch *amqp.Channel
	for ctx.Err() == nil {
		ch = c.session(ctx, ch)
	}
	// Shutdown: stop the flow, give handlers their grace, then close.
	if ch != nil {
		c.acks.alone() // before the cancel: see alone
		_ = ch.Cancel(cfg.Tag, false)
	}
	close(c.work)
	c.drain(&workers, cancelHandlers)
	if ch != nil {
		_ = ch.Close()
	}
	return nil
}

// handle runs the handler and settles the delivery from its verdict.
func (c *consumer) handle(ctx context.Context, w delivery) {
	d := w.d
	v := c.h(ctx, d)
	logVerdict(c.log, c.cfg.Queue, d, v)
	var err error
	if v.Action == Ack {
		err = w.acks.done(d.DeliveryTag) // usually sent later, with others: see acks
	} else {
		err = settle(d, v)
		w.acks.settledAlone(d.DeliveryTag)
	}
	c.cfg.Metrics.observe(c.cfg.Name, v, err)
	if err != nil {
		// The channel is gone; RabbitMQ has already returned the delivery
		// to the queue, whatever the verdict was.
		c.log.Debug("could not settle a delivery; RabbitMQ requeues it with the channel", "queue", c.cfg.Queue, "verdict", v.Action.String(), "err", err)
	}
}

// session waits for the gates, makes sure a channel is open (reusing ch
// while it lives), consumes on it until the flow stops, and returns the
// channel to use next (nil after a failure).
func (c *consumer) session(ctx context.Context, ch *amqp.Channel) *amqp.Channel {
	if waitGates(ctx, c.cfg.Gates) != nil {
		return ch // ctx is done
	}
	if ch == nil || ch.IsClosed() {
		if ch != nil {
			_ = ch.Close()
		}
		var err error
		if ch, err = c.openChannel(ctx); err != nil {
			c.retry(ctx, err)
			return nil
		}
		c.acks = newAcks(ch.Ack, c.ackFailed)
	}
	deliveries, err := ch.Consume(c.cfg.Queue, c.cfg.Tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		c.retry(ctx, err)
		return nil
	}
	c.log.Info("consuming", "queue", c.cfg.Queue, "concurrency", c.cfg.Concurrency)
	fctx, stopWatching := context.WithCancel(ctx)
	stopped := forward(ctx, deliveries, c.work, c.acks, anyLost(fctx, c.cfg.Gates))
	stopWatching()
	switch {
	case stopped == paused:
		// Keep the channel, so the deliveries in hand can still be
		// settled; stop the flow and give back what arrived meanwhile
		// (never handed to a handler, so no verdict: this is flow control).
		c.log.Warn("pausing: handlers cannot work (gate lost); the queue is left to other consumers", "queue", c.cfg.Queue)
		c.acks.alone() // before the cancel: see alone
		if ch.Cancel(c.cfg.Tag, false) == nil {
			for d := range deliveries {
				_ = settle(&d, GiveBack("consumer paused"))
			}
		}
	case ctx.Err() == nil:
		c.log.Warn("consumer channel closed; re-opening", "queue", c.cfg.Queue)
	}
	return ch
}

// ackFailed counts an ack that failed after its handler returned (one
// sent later): RabbitMQ requeues the delivery with the channel.
func (c *consumer) ackFailed(err error) {
	c.cfg.Metrics.settleFailed(c.cfg.Name)
	c.log.Debug("could not send acks; RabbitMQ requeues their deliveries with the channel", "queue", c.cfg.Queue, "err", err)
}

func (c *consumer) retry(ctx context.Context, err error) { retry(ctx, c.log, c.cfg.Queue, err) }

// retry logs why a consumer of queue cannot consume and waits a step
// before it tries again (unless ctx is done).
func retry(ctx context.Context, log *slog.Logger, queue string, err error) {
	if ctx.Err() == nil {
		log.Warn("cannot consume; retrying", "queue", queue, "err", err)
		sleep(ctx, backoffStep)
	}
}

// drain waits for the workers to finish within the grace period, then
// cancels what is still running and waits for it to hand its work back.
func (c *consumer) drain(workers *sync.WaitGroup, cancelHandlers context.CancelFunc) {
	finished := make(chan struct{})
	go func() { workers.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(c.cfg.Grace):
		c.log.Warn("grace period over; returning unfinished deliveries to the queue", "queue", c.cfg.Queue, "grace", c.cfg.Grace)
		cancelHandlers()
		<-finished
	}
}

func (c *consumer) openChannel(ctx context.Context) (*amqp.Channel, error) {
	return openChannel(ctx, c.link, c.cfg.Concurrency)
}

// openChannel opens a channel of link with the topology ensured and the
// prefetch set.
func openChannel(ctx context.Context, link *Link, prefetch int) (*amqp.Channel, error) {
	conn, err := link.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// Ensuring it again here heals a queue deleted under a running service
	// (or says, as cafe's roles may not declare, that it is missing).
	if err := Ensure(conn, link.cfg.Topology, link.cfg.Passive); err != nil {
		return nil, err
	}
	ch, err := link.Channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("set prefetch: %w", err)
	}
	return ch, nil
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
func forward(ctx context.Context, deliveries <-chan amqp.Delivery, work chan<- delivery, acks *acks, lost <-chan struct{}) stop {
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
			acks.add(d.DeliveryTag)
			select {
			case work <- delivery{&d, acks}:
			case <-ctx.Done():
				return closed
			}
		}
	}
}
