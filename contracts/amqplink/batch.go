package amqplink

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// BatchHandler handles deliveries a batch at a time, for a role whose work
// is cheaper in bulk than one by one (the ledger: one transaction for many
// events). ConsumeBatches calls it from one goroutine: never two calls at
// once.
type BatchHandler interface {
	// Add takes the next delivery, in the order the channel delivered
	// them, and returns its verdict and how much of the batch it fills, in
	// the handler's own units (the ledger's: events). Done means that d
	// joins the batch in hand, to be acked once Flush succeeds; any other
	// verdict is settled at once and d is not part of the batch.
	Add(d *amqp.Delivery) (v Verdict, size int)
	// Flush does the work of the batch in hand (every delivery Add took
	// with Done since the last Flush) and returns nil once it is done:
	// then they are all acked. An error means the work is not done and
	// never will be by this consumer (ctx was cancelled: the grace period
	// after shutdown is over): they are all handed back. Either way the
	// next Add begins a new batch. Flush may take as long as it needs
	// (the ledger retries a write PostgreSQL refused): the deliveries wait
	// unacked meanwhile, up to the prefetch.
	Flush(ctx context.Context) error
}

// BatchConfig says what ConsumeBatches consumes and how it gathers a batch.
type BatchConfig struct {
	Queue    string
	Name     string // the consumer's role: a bounded label in logs and metrics
	Tag      string // consumer tag, unique per process
	Size     int    // a batch is flushed once the sizes Add returned reach it
	Prefetch int    // deliveries in hand at once (the prefetch count), so also the most one batch holds
	// Wait is how long the first delivery of a batch waits for others
	// before the batch is flushed, full or not.
	Wait    time.Duration
	Grace   time.Duration // after ctx is done, how long the batch in hand may take to flush
	Metrics *ConsumerMetrics
}

// batchConsumer is one running ConsumeBatches.
type batchConsumer struct {
	link *Link
	cfg  BatchConfig
	log  *slog.Logger
	h    BatchHandler
	hctx context.Context // Flush's: cancelled cfg.Grace after the consumer's ctx is done

	// The batch in hand: how many deliveries, their sizes' sum, the last
	// delivery's tag. Every delivery of the channel up to last is either
	// in the batch or settled already (Add's other verdicts), so one
	// basic.ack of last with multiple=true settles exactly the batch.
	n, size int
	last    uint64
	timer   *time.Timer // Wait after the batch's first delivery
}

// ConsumeBatches is Consume for a BatchHandler: one goroutine reads the
// deliveries in order, gives each to h.Add, and calls h.Flush once the
// batch reaches cfg.Size or cfg.Prefetch deliveries, or cfg.Wait after its
// first delivery; then it settles the whole batch with a single basic.ack
// (or basic.nack) with multiple=true up to the batch's last tag.
//
// Why: the ledger's work is a transaction per batch, so handling its
// deliveries on a pool of workers (Consume) only for them to wait for the
// batch cost a goroutine hand-off, a wake-up and a held ack per delivery.
// Here a delivery costs its decoding in Add, and a batch one Flush and one
// ack frame.
//
// It re-opens its channel whenever the channel or connection drops, as
// Consume does; the batch in hand when a channel dies is still flushed
// (RabbitMQ has already put its messages back, so the work is done twice:
// harmless for a handler whose work is idempotent, as Consume's
// redeliveries require too) and its ack fails, counted. Gates are not
// supported: the ledger needs none.
//
// Shutdown: when ctx is done it stops taking deliveries, flushes the batch
// in hand (Flush's context is cancelled cfg.Grace later), settles it, then
// cancels the consumer and closes the channel, which returns to the queue
// every delivery it had not taken yet. The acks come before the cancel:
// RabbitMQ 3.10 closes a quorum queue's channel on a multiple ack after a
// basic.cancel (see acks.alone).
func (l *Link) ConsumeBatches(ctx context.Context, cfg BatchConfig, log *slog.Logger, h BatchHandler) error {
	if cfg.Size < 1 || cfg.Prefetch < 1 {
		return fmt.Errorf("batch consumer: size %d and prefetch %d: want at least 1 each", cfg.Size, cfg.Prefetch)
	}
	hctx, cancelFlush := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelFlush()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(cfg.Grace, cancelFlush) })
	defer stopGrace()
	c := &batchConsumer{link: l, cfg: cfg, log: log, h: h, hctx: hctx, timer: time.NewTimer(time.Hour)}
	c.timer.Stop()
	var ch *amqp.Channel
	for ctx.Err() == nil {
		ch = c.session(ctx, ch)
	}
	if ch != nil {
		_ = ch.Cancel(cfg.Tag, false)
		_ = ch.Close()
	}
	return nil
}

// session makes sure a channel is open (reusing ch while it lives),
// consumes on it until the flow stops, and returns the channel to use next
// (nil after a failure).
func (c *batchConsumer) session(ctx context.Context, ch *amqp.Channel) *amqp.Channel {
	if ch == nil || ch.IsClosed() {
		if ch != nil {
			_ = ch.Close()
		}
		var err error
		if ch, err = openChannel(ctx, c.link, c.cfg.Prefetch); err != nil {
			retry(ctx, c.log, c.cfg.Queue, err)
			return nil
		}
	}
	deliveries, err := ch.Consume(c.cfg.Queue, c.cfg.Tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		retry(ctx, c.log, c.cfg.Queue, err)
		return nil
	}
	c.log.Info("consuming in batches", "queue", c.cfg.Queue, "size", c.cfg.Size, "prefetch", c.cfg.Prefetch)
	c.gather(ctx, ch, deliveries)
	if ctx.Err() == nil {
		c.log.Warn("consumer channel closed; re-opening", "queue", c.cfg.Queue)
	}
	return ch
}

// gather adds deliveries to the batch and flushes it when it is full or
// its wait is over, until the delivery channel closes or ctx is done; the
// batch in hand is flushed then too.
func (c *batchConsumer) gather(ctx context.Context, ch *amqp.Channel, deliveries <-chan amqp.Delivery) {
	defer c.flush(ch)
	for {
		var due <-chan time.Time
		if c.n > 0 {
			due = c.timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-due:
			c.flush(ch)
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			c.add(ch, &d)
			if c.size >= c.cfg.Size || c.n >= c.cfg.Prefetch {
				c.flush(ch)
			}
		}
	}
}

// add gives d to the handler: it joins the batch, or is settled at once.
func (c *batchConsumer) add(ch *amqp.Channel, d *amqp.Delivery) {
	v, size := c.h.Add(d)
	if v.Action != Ack {
		logVerdict(c.log, c.cfg.Queue, d, v)
		c.cfg.Metrics.observe(c.cfg.Name, v, settle(d, v))
		return
	}
	if c.n == 0 {
		c.timer.Reset(c.cfg.Wait)
	}
	c.n++
	c.size += size
	c.last = d.DeliveryTag
}

// flush has the handler finish the batch in hand and settles it: one ack,
// or one nack that hands it back, for every delivery of the batch.
func (c *batchConsumer) flush(ch *amqp.Channel) {
	if c.n == 0 {
		return
	}
	c.timer.Stop()
	v := Done()
	var err error
	if ferr := c.h.Flush(c.hctx); ferr == nil {
		err = ch.Ack(c.last, true)
	} else {
		v = GiveBack("not finished: " + ferr.Error())
		c.log.Info("messages back to the queue", "queue", c.cfg.Queue, "verdict", v.Action.String(), "messages", c.n, "reason", v.Reason)
		err = ch.Nack(c.last, true, true)
	}
	if err != nil {
		c.log.Debug("could not settle a batch; RabbitMQ requeues it with the channel", "queue", c.cfg.Queue, "messages", c.n, "err", err)
	}
	c.cfg.Metrics.observeBatch(c.cfg.Name, v, c.n, err)
	c.n, c.size, c.last = 0, 0, 0
}
