package caller

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// Config is the caller's configuration; zero fields take the defaults.
type Config struct {
	Instance       string        // names this caller in logs, its consumer tag and MQTT client id; default c-<random hex>
	Concurrency    int           // results delivered at once, and the prefetch; default 256
	Grace          time.Duration // on shutdown, time to finish deliveries in hand; default 10s
	PublishTimeout time.Duration // wait for the MQTT broker's PUBACK; default 10s
	WaitMQTT       time.Duration // hold a result while the MQTT broker is down, up to this; default 10m
	MaxBodyBytes   int           // larger results are poison; default 1 MiB + 64 KiB
}

// NewInstance returns a fresh random instance name, c-<8 hex digits>.
func NewInstance() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "c-" + hex.EncodeToString(b[:])
}

func (c *Config) fill() {
	if c.Instance == "" {
		c.Instance = NewInstance()
	}
	if c.Concurrency == 0 {
		c.Concurrency = 256
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Second
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 10 * time.Second
	}
	if c.WaitMQTT == 0 {
		c.WaitMQTT = 10 * time.Minute
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 1<<20 + 64<<10
	}
}

// Validate reports every problem with c (after defaults are filled).
func (c Config) Validate() error {
	var errs []error
	if !contracts.ValidRoute(c.Instance) {
		errs = append(errs, fmt.Errorf("instance %q: want 1 to %d characters from A-Z a-z 0-9 . _ : -", c.Instance, contracts.MaxRouteLen))
	}
	if c.Concurrency < 1 || c.Concurrency > 65535 {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1 to 65535", c.Concurrency))
	}
	if c.Grace < 0 || c.PublishTimeout <= 0 || c.MaxBodyBytes < 1 {
		errs = append(errs, errors.New("grace must be 0 or more; publish timeout and body limit more than 0"))
	}
	// RabbitMQ closes a channel that holds a delivery unacked for its
	// consumer timeout (30 minutes by default).
	if c.WaitMQTT <= 0 || c.WaitMQTT > 15*time.Minute {
		errs = append(errs, fmt.Errorf("wait for mqtt %v: want more than 0 and at most 15m (half of RabbitMQ's default consumer timeout)", c.WaitMQTT))
	}
	return errors.Join(errs...)
}

// Results is what the caller needs of the results queue.
type Results interface {
	Consume(ctx context.Context, cfg amqplink.ConsumerConfig, log *slog.Logger, h amqplink.Handler) error
}

// MQTT is what the caller needs of the MQTT broker: publishing, and knowing
// when it can (the gate on taking results).
type MQTT interface {
	WaitConnected(ctx context.Context) error
	Publish(ctx context.Context, m mqttlink.Message) error
	amqplink.Gate
}

// Caller delivers results.
type Caller struct {
	cfg     Config
	log     *slog.Logger
	top     contracts.Topology
	results Results
	mqtt    MQTT
	m       *metrics
}

// New builds a caller. Nothing runs until Run.
func New(cfg Config, top contracts.Topology, results Results, mqtt MQTT, prom prometheus.Registerer, log *slog.Logger) (*Caller, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(prom)
	if err != nil {
		return nil, err
	}
	return &Caller{cfg: cfg, log: log.With("caller", cfg.Instance), top: top, results: results, mqtt: mqtt, m: m}, nil
}

// Instance is this caller's name.
func (c *Caller) Instance() string { return c.cfg.Instance }

// Run delivers results, and notices of dead-lettered commands, until ctx is
// done; it returns once the deliveries in hand are finished or handed back
// (within Config.Grace).
func (c *Caller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	var noticeErr error
	wg.Go(func() {
		noticeErr = c.results.Consume(ctx, amqplink.ConsumerConfig{
			Queue:       c.top.DeadNotifyQueue(),
			Tag:         "caller-notices-" + c.cfg.Instance,
			Concurrency: noticeConcurrency,
			Grace:       c.cfg.Grace,
			Gates:       []amqplink.Gate{c.mqtt},
		}, c.log, c.notice)
	})
	err := c.results.Consume(ctx, amqplink.ConsumerConfig{
		Queue:       c.top.ResultsQueue(),
		Tag:         "caller-" + c.cfg.Instance,
		Concurrency: c.cfg.Concurrency,
		Grace:       c.cfg.Grace,
		Gates:       []amqplink.Gate{c.mqtt},
	}, c.log, c.handle)
	wg.Wait()
	return errors.Join(err, noticeErr)
}

// noticeConcurrency bounds notices in flight: dead letters are rare.
const noticeConcurrency = 16

// handle is the caller's ack policy for results; see the package doc.
func (c *Caller) handle(ctx context.Context, d *amqp.Delivery) {
	meta, err := c.decode(d)
	if err != nil {
		c.m.results.WithLabelValues(outcomePoison).Inc()
		c.log.Warn("not a deliverable result; rejecting it to the dead-letter queue", "message_id", clip(d.MessageId), "err", err)
		c.settle(d.Reject(false))
		return
	}
	c.deliver(ctx, d, meta, d.Body, outcomeDelivered)
}

// notice tells an app that its command was dead-lettered, with a
// CodeDeadLettered error result, from the copy of every dead letter that
// RabbitMQ routes to the notify queue (the dead letter itself stays in the
// dead-letter queue). Dead letters that are not commands of an app waiting
// for a result (dead results, one-way commands, messages without valid
// headers) need no notice and are acked.
func (c *Caller) notice(ctx context.Context, d *amqp.Delivery) {
	meta, body, ok := c.noticeFor(d)
	if !ok {
		c.m.results.WithLabelValues(outcomeNoticeSkipped).Inc()
		c.settle(d.Ack(false))
		return
	}
	c.deliver(ctx, d, meta, body, outcomeNoticeDelivered)
}

func (c *Caller) noticeFor(d *amqp.Delivery) (contracts.ResultMeta, []byte, bool) {
	death, ok := amqplink.FirstDeath(d.Headers)
	if !ok || death.Queue != c.top.CommandsQueue() {
		return contracts.ResultMeta{}, nil, false
	}
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return meta, nil, false
	}
	// The body's id is the app's, when the body can be read; a command
	// rejected as unreadable still names its app's id in its headers.
	if req, err := contracts.ParseRequest(d.Body); err == nil {
		meta.MsgID = string(req.ID)
	}
	if !contracts.ValidIDToken(meta.MsgID) {
		return meta, nil, false // a one-way command: nobody waits
	}
	meta.Outcome = contracts.OutcomeDeadLetter
	why := "RabbitMQ dead-lettered it (" + death.Reason + ")"
	switch death.Reason {
	case "rejected":
		why = "it could not be read as a command"
	case "delivery_limit":
		why = "it was delivered too often without finishing (it may crash workers)"
	}
	reason := "the command was set aside as a dead letter: " + why + "; a developer can inspect it with `cafe dead list`"
	if contracts.ValidKey(d.MessageId) {
		reason += " and replay it with `cafe dead replay --id " + d.MessageId + "`"
	}
	return meta, contracts.ErrorResponse([]byte(meta.MsgID), contracts.NewError(contracts.CodeDeadLettered,
		contracts.Detail{DeviceID: meta.DeviceID, Reason: reason})), true
}

// deliver publishes body to the app and settles d: acked once the MQTT
// broker acknowledged it, handed back otherwise (see the package doc).
func (c *Caller) deliver(ctx context.Context, d *amqp.Delivery, meta contracts.ResultMeta, body []byte, outcome string) {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WaitMQTT)
	err := c.mqtt.WaitConnected(wctx)
	cancel()
	if err != nil {
		c.m.results.WithLabelValues(outcomeRequeued).Inc()
		c.log.Warn("mqtt broker unreachable; handing the result back", "client_id", meta.ClientID, "msg_id", meta.MsgID, "err", err)
		c.settle(d.Nack(false, true))
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.PublishTimeout)
	sent := time.Now()
	err = c.mqtt.Publish(pctx, mqttlink.Message{Topic: contracts.ResultsTopic(meta.ClientID), Payload: body, QoS: 1})
	cancel()
	if err != nil {
		c.m.results.WithLabelValues(outcomeRequeued).Inc()
		c.log.Warn("mqtt broker did not acknowledge the result; handing it back", "client_id", meta.ClientID, "msg_id", meta.MsgID, "err", err)
		c.settle(d.Nack(false, true))
		return
	}
	now := time.Now()
	c.m.publish.Observe(now.Sub(sent).Seconds())
	if !meta.AcceptedAt.IsZero() && outcome == outcomeDelivered {
		c.m.endToEnd.Observe(now.Sub(meta.AcceptedAt).Seconds())
	}
	c.m.results.WithLabelValues(outcome).Inc()
	c.log.Debug("result delivered", "client_id", meta.ClientID, "device_id", meta.DeviceID, "msg_id", meta.MsgID, "outcome", meta.Outcome)
	c.settle(d.Ack(false))
}

func (c *Caller) decode(d *amqp.Delivery) (contracts.ResultMeta, error) {
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return meta, err
	}
	if len(d.Body) > c.cfg.MaxBodyBytes {
		return meta, fmt.Errorf("body is %d bytes, over the %d-byte limit", len(d.Body), c.cfg.MaxBodyBytes)
	}
	if body := bytes.TrimSpace(d.Body); len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return meta, errors.New("body is not a JSON object")
	}
	return meta, nil
}

func (c *Caller) settle(err error) {
	if err != nil {
		c.log.Debug("could not settle a delivery; RabbitMQ requeues it with the channel", "err", err)
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
