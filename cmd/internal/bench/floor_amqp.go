package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/cli"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
)

// amqpFloor is the AMQP hop measured alone, on a private topology of the
// run's own: one link publishes with confirms, as the cashier does, and
// another consumes with manual acks, as a barista does.
type amqpFloor struct {
	cfg  Config
	top  contracts.Topology
	body []byte
	log  *slog.Logger

	pubLink, conLink *amqplink.Link
	pub              *amqplink.Publisher
	stopLinks        context.CancelFunc
	links            sync.WaitGroup
}

// floorTopology is the floor's private topology: the pipeline's queue
// arguments under a prefix of the run's own, without the commands queue's
// length limit, which the publish-only floor may outgrow.
func floorTopology(run string) contracts.Topology {
	top := contracts.DefaultTopology()
	top.Prefix = "bench-floor-" + run
	top.CommandsMaxLength = 0
	return top
}

func measureAMQP(ctx context.Context, cfg Config, run string, size int) (AMQPFloor, error) {
	out := AMQPFloor{Queue: floorTopology(run).CommandsQueue()}
	f, err := startAMQPFloor(ctx, cfg, run, size)
	if err != nil {
		return out, err
	}
	defer f.close()

	// 1. Publish with confirms, no consumer: what the cashier does.
	n, elapsed, err := inFlight(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, _ int) error { return f.publish(ctx) })
	if err != nil {
		return out, err
	}
	out.PublishPerS, out.PublishSeconds = perSecond(n, elapsed), elapsed.Seconds()
	if err := purge(ctx, f.pubLink, f.top.CommandsQueue()); err != nil {
		return out, err
	}

	// 2. Consume with manual acks, as a barista does (prefetch = InFlight):
	// one at a time, then InFlight not yet consumed at once.
	c := f.consume(ctx)
	defer c.close()
	if out.Lone, out.LoneConfirm, err = f.lone(ctx, c); err != nil {
		return out, err
	}
	base := c.consumed.Load()
	_, elapsed, err = inFlight(ctx, cfg.FloorDuration, FloorInFlight, func(ctx context.Context, _ int) error {
		select {
		case c.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		return f.publish(ctx)
	})
	if err != nil {
		return out, err
	}
	out.HopPerS, out.HopSeconds = perSecond(int(c.consumed.Load()-base), elapsed), elapsed.Seconds()
	return out, nil
}

// linkConfig is a connection of the floor's, as the ops user.
func (f *amqpFloor) linkConfig(name string) amqplink.Config {
	return amqplink.Config{URL: cli.AMQPWithRole(f.cfg.AMQPURL, identity.Ops), Topology: f.top, Name: name, TLS: f.cfg.AMQPTLS}
}

// startAMQPFloor connects both links and waits for a confirm-mode channel.
func startAMQPFloor(ctx context.Context, cfg Config, run string, size int) (*amqpFloor, error) {
	f := &amqpFloor{cfg: cfg, top: floorTopology(run), body: make([]byte, size), log: slog.New(slog.DiscardHandler)}
	for i := range f.body {
		f.body[i] = 'x'
	}
	var err error
	if f.pubLink, err = amqplink.New(f.linkConfig("cafe-bench-floor-publish"), f.log); err != nil {
		return nil, err
	}
	if f.conLink, err = amqplink.New(f.linkConfig("cafe-bench-floor-consume"), f.log); err != nil {
		return nil, err
	}
	f.pub = amqplink.NewPublisher(f.pubLink, f.log)
	lctx, stop := context.WithCancel(context.Background())
	f.stopLinks = stop
	f.links.Go(func() { _ = f.pubLink.Run(lctx) })
	f.links.Go(func() { _ = f.conLink.Run(lctx) })
	f.links.Go(func() { _ = f.pub.Run(lctx) })
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := f.pub.WaitReady(wctx); err != nil {
		f.close()
		return nil, fmt.Errorf("no confirm-mode channel to RabbitMQ at %s: %w", cfg.AMQPURL, err)
	}
	return f, nil
}

// close deletes the private topology, then stops the links: in that
// order, so that nothing redeclares it afterwards.
func (f *amqpFloor) close() {
	deleteTopology(f.linkConfig("cafe-bench-floor-delete"), f.top)
	f.stopLinks()
	f.links.Wait()
}

// publish publishes one command-sized message with the headers of a
// command, and waits for its confirm.
func (f *amqpFloor) publish(ctx context.Context) error {
	now := time.Now()
	meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "bench", DeviceID: "bench-floor",
		MsgID: `"x"`, Deadline: now.Add(f.cfg.Timeout), AcceptedAt: now}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return f.pub.Publish(pctx, f.top.CommandsExchange(), contracts.RoutingKeyCommand, amqp.Publishing{
		MessageId: meta.CommandID, Headers: meta.Headers(), Body: f.body, // as the cashier's: no content-type or timestamp
	})
}

// lone times messages one at a time, from their publish to their confirm
// and to their delivery.
func (f *amqpFloor) lone(ctx context.Context, c *floorConsumer) (delivered, confirmed Percentiles, err error) {
	toDelivery, toConfirm := newHist(), newHist()
	err = oneAtATime(f.cfg.LoneCount, func(measured bool) error {
		d, conf, err := f.timeOne(ctx, c)
		if err == nil && measured {
			record(toDelivery, d)
			record(toConfirm, conf)
		}
		return err
	})
	return percentiles(toDelivery), percentiles(toConfirm), err
}

// timeOne publishes one message and returns how long it took to be
// delivered to c and to be confirmed.
func (f *amqpFloor) timeOne(ctx context.Context, c *floorConsumer) (delivered, confirmed time.Duration, err error) {
	select {
	case <-c.delivered: // a stale signal
	default:
	}
	start := time.Now()
	if err := f.publish(ctx); err != nil {
		return 0, 0, err
	}
	confirmed = time.Since(start)
	select {
	case at := <-c.delivered:
		return at.Sub(start), confirmed, nil
	case <-time.After(10 * time.Second):
		return 0, 0, errors.New("a published message was not delivered within 10s")
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// floorConsumer consumes the floor's queue until closed. Each delivery
// frees a publishing slot (the throughput floor keeps InFlight published
// but not yet consumed) and offers its time to the lone measurement.
type floorConsumer struct {
	consumed  atomic.Int64
	slots     chan struct{} // published, not yet consumed
	delivered chan time.Time
	stop      context.CancelFunc
	done      chan struct{}
}

// consume starts consuming with manual acks, prefetch InFlight.
func (f *amqpFloor) consume(ctx context.Context) *floorConsumer {
	c := &floorConsumer{slots: make(chan struct{}, FloorInFlight), delivered: make(chan time.Time, 1), done: make(chan struct{})}
	cctx, stop := context.WithCancel(ctx)
	c.stop = stop
	go func() {
		defer close(c.done)
		cc := amqplink.ConsumerConfig{Queue: f.top.CommandsQueue(), Tag: "bench-floor", Concurrency: FloorInFlight, Grace: time.Second}
		_ = f.conLink.Consume(cctx, cc, f.log, c.handle)
	}()
	return c
}

func (c *floorConsumer) handle(context.Context, *amqp.Delivery) amqplink.Verdict {
	at := time.Now()
	c.consumed.Add(1)
	select {
	case <-c.slots:
	default:
	}
	select {
	case c.delivered <- at:
	default:
	}
	return amqplink.Done()
}

// close stops the consumer and waits for it.
func (c *floorConsumer) close() {
	c.stop()
	<-c.done
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

// deleteTopology removes every queue and exchange of the floor's private
// topology. amqplink.Delete goes by the topology's one list, so a queue the
// topology gains later is not left behind. It is best effort: the floor's
// figures stand without it.
func deleteTopology(cfg amqplink.Config, top contracts.Topology) {
	conn, err := amqplink.Dial(cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = amqplink.Delete(conn, top)
}
