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
	for _, q := range []string{"lm.commands", "lm.results", "lm.events"} {
		admin.ch.QueueDelete(q, false, false, false)
	}
	for _, e := range []string{"lm.commands", "lm.results"} {
		must(admin.ch.ExchangeDeclare(e, "direct", true, false, false, false, nil))
	}
	must(admin.ch.ExchangeDeclare("lm.events", "fanout", true, false, false, false, nil))
	q := amqp.Table{"x-queue-type": "quorum"}
	_, err := admin.ch.QueueDeclare("lm.commands", true, false, false, false, q)
	must(err)
	_, err = admin.ch.QueueDeclare("lm.results", true, false, false, false, q)
	must(err)
	must(admin.ch.QueueBind("lm.commands", "command", "lm.commands", false, nil))
	must(admin.ch.QueueBind("lm.results", "result", "lm.results", false, nil))
	ledger := *mode != "none"
	if ledger {
		args := amqp.Table{"x-queue-type": "quorum", "x-overflow": "drop-head", "x-max-length": int64(2000000)}
		switch *mode {
		case "stream":
			args = amqp.Table{"x-queue-type": "stream", "x-max-length-bytes": int64(2 << 30)}
		case "classic":
			args = amqp.Table{"x-queue-version": int64(2), "x-overflow": "drop-head", "x-max-length": int64(2000000)}
		}
		_, err = admin.ch.QueueDeclare("lm.events", true, false, false, false, args)
		must(err)
		must(admin.ch.QueueBind("lm.events", "", "lm.events", false, nil))
		must(admin.ch.QueueBind("lm.events", "command", "lm.commands", false, nil))
		must(admin.ch.QueueBind("lm.events", "result", "lm.results", false, nil))
	}
	cashier, barista, baristaPub, caller, callerPub := newRole(true), newRole(false), newRole(true), newRole(false), newRole(false)
	sent := &batcher{r: baristaPub, batched: *mode != "quorum"}
	delivered := &batcher{r: callerPub, batched: *mode != "quorum"}
	waiting := sync.Map{}
	must(barista.ch.Qos(256, 0, false))
	must(caller.ch.Qos(256, 0, false))
	cmds, err := barista.ch.Consume("lm.commands", "", false, false, false, false, nil)
	must(err)
	go func() {
		for d := range cmds {
			go func(d amqp.Delivery) {
				if ledger {
					sent.add()
				}
				baristaPub.publish("lm.results", "result", d.Body, true)
				d.Ack(false)
			}(d)
		}
	}()
	res, err := caller.ch.Consume("lm.results", "", false, false, false, false, nil)
	must(err)
	go func() {
		for d := range res {
			if ledger {
				delivered.add()
			}
			d.Ack(false)
			if c, ok := waiting.LoadAndDelete(string(d.Body)); ok {
				close(c.(chan struct{}))
			}
		}
	}()
	var events atomic.Int64
	if ledger {
		l := newRole(false)
		must(l.ch.Qos(512, 0, false))
		var cargs amqp.Table
		if *mode == "stream" {
			cargs = amqp.Table{"x-stream-offset": "next"}
		}
		evs, err := l.ch.Consume("lm.events", "", false, false, false, false, cargs)
		must(err)
		go func() {
			n := 0
			tick := time.NewTicker(20 * time.Millisecond)
			var last uint64
			for {
				select {
				case d := <-evs:
					events.Add(1)
					last = d.DeliveryTag
					n++
					if n >= 256 {
						l.ch.Ack(last, true)
						n = 0
					}
				case <-tick.C:
					if n > 0 {
						l.ch.Ack(last, true)
						n = 0
					}
				}
			}
		}()
	}
	var seq atomic.Int64
	one := func() time.Duration {
		id := strconv.FormatInt(seq.Add(1), 10)
		c := make(chan struct{})
		waiting.Store(id, c)
		t0 := time.Now()
		cashier.publish("lm.commands", "command", []byte(id), true)
		<-c
		return time.Since(t0)
	}
	for range 20 {
		one()
	}
	var lat []time.Duration
	c0 := cpu()
	for range *lone {
		lat = append(lat, one())
	}
	loneCPU := (cpu() - c0) * 1000 / float64(*lone)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var done atomic.Int64
	stop := time.Now().Add(*dur)
	var wg sync.WaitGroup
	p0, d0, e0 := sent.posts.Load()+delivered.posts.Load(), done.Load(), events.Load()
	c0 = cpu()
	t0 := time.Now()
	for range *inflight {
		wg.Go(func() {
			for time.Now().Before(stop) {
				one()
				done.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(t0).Seconds()
	n := float64(done.Load() - d0)
	time.Sleep(300 * time.Millisecond)
	cpuMS := (cpu() - c0) * 1000 / n
	fmt.Printf("%-15s lone p50 %.2fms p90 %.2fms rabbit %.3f ms/cmd | %d in flight: %.0f/s rabbit %.3f ms/cmd, explicit msgs/cmd %.2f, events queue msgs/cmd %.2f\n",
		*mode, float64(lat[len(lat)/2].Microseconds())/1000, float64(lat[len(lat)*9/10].Microseconds())/1000, loneCPU,
		*inflight, n/el, cpuMS, float64(sent.posts.Load()+delivered.posts.Load()-p0)/n, float64(events.Load()-e0)/n)
	for _, q := range []string{"lm.commands", "lm.results", "lm.events"} {
		admin.ch.QueueDelete(q, false, false, false)
	}
}
