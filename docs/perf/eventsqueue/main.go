// Command eventsqueue measures what the ledger's events queue costs
// RabbitMQ, apart from everything else cafe does: it plays the pipeline's
// AMQP traffic (a command published with confirm to a quorum queue,
// consumed, its result published with confirm to another, consumed; 64
// in flight, and one at a time), with the events queue bound to both
// exchanges as contracts.Topology binds it, the explicit "sent" and
// "delivered" events posted one per message (-mode quorum, before batches)
// or batched as contracts.EventBatcher does (quorum-batched), the events
// queue a stream or a classic queue instead (stream, classic), or no
// events queue at all (none); a consumer stands in for the ledger. It
// prints the lone round trip and, at 64 in flight, commands per second and
// RabbitMQ's CPU per command, read from /proc/PID/stat of -pid.
//
// Run it against a RabbitMQ of its own, so that other traffic does not
// count (README, Records: what it costs), e.g. a scratch node:
//
//	RABBITMQ_NODENAME=scratch@localhost RABBITMQ_CONFIG_FILE=/tmp/scratch/rabbitmq \
//	  RABBITMQ_MNESIA_BASE=/tmp/scratch/mnesia RABBITMQ_LOG_BASE=/tmp/scratch/log \
//	  RABBITMQ_DIST_PORT=45673 rabbitmq-server   # rabbitmq.conf: listeners.tcp.default = 127.0.0.1:45672, loopback_users = none
//	go run ./docs/perf/eventsqueue -pid $(pgrep -f scratch@localhost | head -1) -mode quorum-batched
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var (
	url      = flag.String("url", "amqp://guest:guest@127.0.0.1:45672/", "")
	pid      = flag.Int("pid", 0, "beam pid")
	mode     = flag.String("mode", "none", "none | quorum | quorum-batched | stream | classic")
	inflight = flag.Int("inflight", 64, "")
	dur      = flag.Duration("dur", 10*time.Second, "")
	lone     = flag.Int("lone", 200, "")
	batchW   = flag.Duration("batch-wait", 5*time.Millisecond, "")
)

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", *pid))
	must(err)
	f := strings.Fields(string(b)[strings.LastIndex(string(b), ")")+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

type role struct {
	conn *amqp.Connection
	ch   *amqp.Channel
	mu   sync.Mutex
}

func newRole(confirm bool) *role {
	c, err := amqp.Dial(*url)
	must(err)
	ch, err := c.Channel()
	must(err)
	if confirm {
		must(ch.Confirm(false))
	}
	return &role{conn: c, ch: ch}
}

func (r *role) publish(ex, key string, body []byte, wait bool) {
	msg := amqp.Publishing{DeliveryMode: 2, Body: body, Headers: amqp.Table{"cafe-client-id": "app", "cafe-device-id": "d-1", "cafe-msg-id": "1"}}
	if !wait {
		r.mu.Lock()
		must(r.ch.PublishWithContext(context.Background(), ex, key, false, false, msg))
		r.mu.Unlock()
		return
	}
	dc, err := r.ch.PublishWithDeferredConfirmWithContext(context.Background(), ex, key, false, false, msg)
	must(err)
	if !dc.Wait() {
		panic("nack")
	}
}

// batcher gathers explicit events like contracts.EventBatcher.
type batcher struct {
	r       *role
	mu      sync.Mutex
	n       int
	timer   *time.Timer
	posts   atomic.Int64
	batched bool
}

func (b *batcher) add() {
	if !b.batched {
		b.posts.Add(1)
		b.r.publish("lm.events", "", make([]byte, 0), false)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.n >= 256 {
		b.flushLocked()
		return
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(*batchW, func() { b.mu.Lock(); b.flushLocked(); b.mu.Unlock() })
	}
}

func (b *batcher) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if b.n == 0 {
		return
	}
	b.posts.Add(1)
	b.r.publish("lm.events", "", make([]byte, 100*b.n), false)
	b.n = 0
}

func main() {
	flag.Parse()
	admin := newRole(false)
	ledger := *mode != "none"
	declare(admin, ledger)
	defer deleteQueues(admin)
	p := startPipeline(ledger)
	for range 20 { // warm up
		p.one()
	}
	loneP50, loneP90, loneCPU := p.lone(*lone)
	rate, cpuMS, explicit, events := p.loaded(*inflight, *dur)
	fmt.Printf("%-15s lone p50 %.2fms p90 %.2fms rabbit %.3f ms/cmd | %d in flight: %.0f/s rabbit %.3f ms/cmd, explicit msgs/cmd %.2f, events queue msgs/cmd %.2f\n",
		*mode, loneP50, loneP90, loneCPU, *inflight, rate, cpuMS, explicit, events)
}

var queues = []string{"lm.commands", "lm.results", "lm.events"}

func deleteQueues(admin *role) {
	for _, q := range queues {
		_, _ = admin.ch.QueueDelete(q, false, false, false)
	}
}

// declare makes the pipeline's two quorum queues and, with ledger, the
// events queue of -mode bound to both exchanges and the events exchange.
func declare(admin *role, ledger bool) {
	deleteQueues(admin)
	for _, e := range []string{"lm.commands", "lm.results"} {
		must(admin.ch.ExchangeDeclare(e, "direct", true, false, false, false, nil))
	}
	must(admin.ch.ExchangeDeclare("lm.events", "fanout", true, false, false, false, nil))
	for _, b := range [][2]string{{"lm.commands", "command"}, {"lm.results", "result"}} {
		_, err := admin.ch.QueueDeclare(b[0], true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
		must(err)
		must(admin.ch.QueueBind(b[0], b[1], b[0], false, nil))
	}
	if !ledger {
		return
	}
	args := amqp.Table{"x-queue-type": "quorum", "x-overflow": "drop-head", "x-max-length": int64(2000000)}
	switch *mode {
	case "stream":
		args = amqp.Table{"x-queue-type": "stream", "x-max-length-bytes": int64(2 << 30)}
	case "classic":
		args = amqp.Table{"x-queue-version": int64(2), "x-overflow": "drop-head", "x-max-length": int64(2000000)}
	}
	_, err := admin.ch.QueueDeclare("lm.events", true, false, false, false, args)
	must(err)
	must(admin.ch.QueueBind("lm.events", "", "lm.events", false, nil))
	must(admin.ch.QueueBind("lm.events", "command", "lm.commands", false, nil))
	must(admin.ch.QueueBind("lm.events", "result", "lm.results", false, nil))
}

// pipeline is the cashier, a barista, a caller and (with the ledger) a
// ledger, as AMQP clients.
type pipeline struct {
	cashier          *role
	sent, delivered  *batcher
	waiting          sync.Map // command id → closed when its result came
	events, explicit func() int64
	seq              atomic.Int64
}

func startPipeline(ledger bool) *pipeline {
	barista, baristaPub, caller, callerPub := newRole(false), newRole(true), newRole(false), newRole(false)
	p := &pipeline{cashier: newRole(true),
		sent:      &batcher{r: baristaPub, batched: *mode != "quorum"},
		delivered: &batcher{r: callerPub, batched: *mode != "quorum"}}
	p.explicit = func() int64 { return p.sent.posts.Load() + p.delivered.posts.Load() }
	p.events = func() int64 { return 0 }
	go p.barista(barista, baristaPub, ledger)
	go p.caller(caller, ledger)
	if ledger {
		p.events = startLedger()
	}
	return p
}

// barista takes each command, posts its sent event and publishes its
// result with confirm, then acks the command.
func (p *pipeline) barista(r, pub *role, ledger bool) {
	must(r.ch.Qos(256, 0, false))
	cmds, err := r.ch.Consume("lm.commands", "", false, false, false, false, nil)
	must(err)
	for d := range cmds {
		go func(d amqp.Delivery) {
			if ledger {
				p.sent.add()
			}
			pub.publish("lm.results", "result", d.Body, true)
			_ = d.Ack(false)
		}(d)
	}
}

// caller takes each result, posts its delivered event, acks it and tells
// the command's sender.
func (p *pipeline) caller(r *role, ledger bool) {
	must(r.ch.Qos(256, 0, false))
	res, err := r.ch.Consume("lm.results", "", false, false, false, false, nil)
	must(err)
	for d := range res {
		if ledger {
			p.delivered.add()
		}
		_ = d.Ack(false)
		if c, ok := p.waiting.LoadAndDelete(string(d.Body)); ok {
			close(c.(chan struct{}))
		}
	}
}

// startLedger consumes the events queue as the ledger does (prefetch 512,
// a multiple ack per 256 or every 20 ms) and returns its count.
func startLedger() func() int64 {
	var events atomic.Int64
	l := newRole(false)
	must(l.ch.Qos(512, 0, false))
	var cargs amqp.Table
	if *mode == "stream" {
		cargs = amqp.Table{"x-stream-offset": "next"}
	}
	evs, err := l.ch.Consume("lm.events", "", false, false, false, false, cargs)
	must(err)
	go func() {
		n, last := 0, uint64(0)
		tick := time.NewTicker(20 * time.Millisecond)
		for {
			select {
			case d := <-evs:
				events.Add(1)
				last, n = d.DeliveryTag, n+1
				if n < 256 {
					continue
				}
			case <-tick.C:
				if n == 0 {
					continue
				}
			}
			_ = l.ch.Ack(last, true)
			n = 0
		}
	}()
	return events.Load
}

// one sends a command and waits for its result.
func (p *pipeline) one() time.Duration {
	id := strconv.FormatInt(p.seq.Add(1), 10)
	c := make(chan struct{})
	p.waiting.Store(id, c)
	t0 := time.Now()
	p.cashier.publish("lm.commands", "command", []byte(id), true)
	<-c
	return time.Since(t0)
}

// lone sends n commands one at a time: p50, p90 (ms) and RabbitMQ's CPU
// per command.
func (p *pipeline) lone(n int) (float64, float64, float64) {
	var lat []time.Duration
	c0 := cpu()
	for range n {
		lat = append(lat, p.one())
	}
	perCmd := (cpu() - c0) * 1000 / float64(n)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(lat[len(lat)/2]), ms(lat[len(lat)*9/10]), perCmd
}

// loaded keeps inflight commands going for d: commands per second,
// RabbitMQ's CPU per command, and explicit and events-queue messages per
// command.
func (p *pipeline) loaded(inflight int, d time.Duration) (rate, cpuMS, explicit, events float64) {
	var done atomic.Int64
	stop := time.Now().Add(d)
	x0, e0, c0, t0 := p.explicit(), p.events(), cpu(), time.Now()
	var wg sync.WaitGroup
	for range inflight {
		wg.Go(func() {
			for time.Now().Before(stop) {
				p.one()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed, n := time.Since(t0).Seconds(), float64(done.Load())
	time.Sleep(300 * time.Millisecond) // the ledger's last acks
	return n / elapsed, (cpu() - c0) * 1000 / n, float64(p.explicit()-x0) / n, float64(p.events()-e0) / n
}
