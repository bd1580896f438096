package caller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
)

// ResultSource is what the caller needs of the results queue (and of the
// dead-letter notices): a consumer that settles each delivery from the
// verdict the caller returns.
type ResultSource interface {
	Consume(ctx context.Context, cfg amqplink.ConsumerConfig, log *slog.Logger, h amqplink.Handler) error
}

// MQTT is what the caller needs of the MQTT broker: publishing, and knowing
// when it can (the gate on taking results).
type MQTT interface {
	// WaitConnected returns nil at once while the link is up, whatever
	// ctx (as mqttlink.Link's does); otherwise it waits until it is, or ctx
	// is done.
	WaitConnected(ctx context.Context) error
	Publish(ctx context.Context, m mqttlink.Message) error
	amqplink.Gate
}

// EventPoster is what the caller needs to tell the ledger a result was
// delivered: a fire-and-forget publish (see contracts.Event).
type EventPoster interface {
	Post(exchange, key string, msg amqp.Publishing) error
}

// Links are the caller's connections to the brokers.
type Links struct {
	Results ResultSource
	MQTT    MQTT
	Events  EventPoster // receives "delivered" events (optional)
	// Metrics counts the consumers' verdicts (optional; shared per process).
	Metrics *amqplink.ConsumerMetrics
}

// Caller delivers results.
type Caller struct {
	cfg    Config
	log    *slog.Logger
	top    contracts.Topology
	links  Links
	m      *metrics
	events *contracts.EventBatcher // the "delivered" events, in batches; nil without Links.Events
}

// New builds a caller. Nothing runs until Run.
func New(cfg Config, top contracts.Topology, links Links, prom prometheus.Registerer, log *slog.Logger) (*Caller, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(prom)
	if err != nil {
		return nil, err
	}
	c := &Caller{cfg: cfg, log: log.With("caller", cfg.Instance), top: top, links: links, m: m}
	if links.Events != nil {
		c.events = contracts.NewEventBatcher(links.Events.Post, func(n int) { m.unsent.Add(float64(n)) })
	}
	return c, nil
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
		noticeErr = c.consume(ctx, c.top.DeadNotifyQueue(), consumerNotices, noticeConcurrency, c.notice)
	})
	err := c.consume(ctx, c.top.ResultsQueue(), consumerResults, c.cfg.Concurrency, c.handle)
	wg.Wait()
	c.events.Flush() // before the links close
	return errors.Join(err, noticeErr)
}

// The caller's consumers, as logs and metrics name them.
const (
	consumerResults = "caller"
	consumerNotices = "caller_notices"
)

func (c *Caller) consume(ctx context.Context, queue, name string, concurrency int, h amqplink.Handler) error {
	c.links.Metrics.Start(name)
	return c.links.Results.Consume(ctx, amqplink.ConsumerConfig{
		Queue:       queue,
		Name:        name,
		Tag:         strings.ReplaceAll(name, "_", "-") + "-" + c.cfg.Instance,
		Concurrency: concurrency,
		Grace:       c.cfg.Grace,
		Gates:       []amqplink.Gate{c.links.MQTT},
		Metrics:     c.links.Metrics,
	}, c.log, h)
}

// noticeConcurrency bounds notices in flight: dead letters are rare.
const noticeConcurrency = 16

// handle is the caller's ack policy for results; see the package doc.
func (c *Caller) handle(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
	if status, ok := d.Headers[contracts.HeaderNotice].(string); ok {
		return c.statusNotice(ctx, d, status)
	}
	meta, err := c.decode(d)
	if err != nil {
		return amqplink.Poison("not a deliverable result: " + err.Error())
	}
	v := c.deliver(ctx, meta, d.Body, outcomeDelivered)
	if v.Action == amqplink.Ack && d.Headers[contracts.HeaderEvents] == contracts.EventsStatus {
		c.publishDone(ctx, meta)
	}
	return v
}

// statusNotice delivers a status notice (contracts.NoticeBody): queued
// from a cashier, sent from a barista; anything else is poison.
func (c *Caller) statusNotice(ctx context.Context, d *amqp.Delivery, status string) amqplink.Verdict {
	from := c.cfg.ResultPublishers
	setting := identity.SettingResultPublishers
	if status == contracts.NoticeQueued {
		from, setting = c.cfg.CommandPublishers, identity.SettingCommandPublishers
	}
	if !contracts.ValidNotice(status) {
		return amqplink.Poison("not a status notice: " + contracts.Clip(status))
	}
	if err := identity.CheckPublisher(d.UserId, from, setting); err != nil {
		return amqplink.Poison("status notice: " + err.Error())
	}
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil || !contracts.ValidIDToken(meta.MsgID) {
		return amqplink.Poison("status notice without a valid client or id")
	}
	at := contracts.EventTime(d.Headers)
	return c.deliver(ctx, meta, contracts.NoticeBody(status, meta.MsgID, meta.CommandID, at), outcomeStatusNotice)
}

// publishDone follows a delivered result with its done notice, best
// effort: the result is delivered whatever happens to the notice.
func (c *Caller) publishDone(ctx context.Context, meta contracts.ResultMeta) {
	if !contracts.ValidIDToken(meta.MsgID) {
		return
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.PublishTimeout)
	defer cancel()
	body := contracts.NoticeBody(contracts.NoticeDone, meta.MsgID, meta.CommandID, time.Now())
	if err := c.links.MQTT.Publish(pctx, mqttlink.Message{Topic: contracts.ResultsTopic(meta.ClientID), Payload: body, QoS: 1}); err == nil {
		c.m.results.WithLabelValues(outcomeStatusNotice).Inc()
	}
}

// notice tells an app that its command was dead-lettered, with a
// CodeDeadLettered error result, from the copy of every dead letter that
// RabbitMQ routes to the notify queue (the dead letter itself stays in the
// dead-letter queue). Dead letters that are not commands of an app waiting
// for a result (dead results, one-way commands, messages without valid
// headers) need no notice and are acked.
func (c *Caller) notice(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
	meta, body, ok := c.noticeFor(d)
	if !ok {
		c.m.results.WithLabelValues(outcomeNoticeSkipped).Inc()
		return amqplink.Done()
	}
	return c.deliver(ctx, meta, body, outcomeNoticeDelivered)
}

func (c *Caller) noticeFor(d *amqp.Delivery) (contracts.ResultMeta, []byte, bool) {
	meta, body, err := DeadLetterNotice(c.top, c.cfg.CommandPublishers, d)
	if err != nil && !errors.Is(err, ErrNoNotice) { // not a cashier's
		c.log.Warn("no notice for a dead letter that no cashier published", "message_id", contracts.Clip(d.MessageId), "reason", err.Error())
	}
	return meta, body, err == nil
}

// ErrNoNotice is a dead letter nobody waits for: not a command of the
// pipeline's commands queue, or a one-way command, or without valid headers.
var ErrNoNotice = errors.New("no app waits for this dead letter")

// DeadLetterNotice is what the app of a dead-lettered command gets, as the
// caller delivers it and the ledger records it: the command's meta and a
// CodeDeadLettered error response with the app's id. d is the dead letter
// as RabbitMQ copies it (with x-death); commandPublishers are the users a
// command may come from. The error says why there is no notice.
func DeadLetterNotice(top contracts.Topology, commandPublishers []string, d *amqp.Delivery) (contracts.ResultMeta, []byte, error) {
	death, ok := amqplink.FirstDeath(d.Headers)
	if !ok || death.Queue != top.CommandsQueue() {
		return contracts.ResultMeta{}, nil, ErrNoNotice
	}
	if err := identity.CheckPublisher(d.UserId, commandPublishers, identity.SettingCommandPublishers); err != nil {
		return contracts.ResultMeta{}, nil, err
	}
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return meta, nil, ErrNoNotice
	}
	// The body's id is the app's, when the body can be read; a command
	// rejected as unreadable still names its app's id in its headers.
	if req, err := contracts.ParseRequest(d.Body); err == nil {
		meta.MsgID = string(req.ID)
	}
	if !contracts.ValidIDToken(meta.MsgID) {
		return meta, nil, ErrNoNotice // a one-way command: nobody waits
	}
	meta.Outcome = contracts.OutcomeDeadLetter
	return meta, contracts.ErrorResponse([]byte(meta.MsgID), contracts.NewError(contracts.CodeDeadLettered,
		contracts.Detail{DeviceID: meta.DeviceID, Reason: deadReason(death.Reason, d.MessageId)})), nil
}

func deadReason(reason, messageID string) string {
	why := "RabbitMQ dead-lettered it (" + reason + ")"
	switch reason {
	case "rejected":
		why = "it could not be read as a command"
	case "delivery_limit":
		why = "it was delivered too often without finishing (it may crash workers)"
	}
	out := "the command was set aside as a dead letter: " + why + "; a developer can inspect it with `cafe dead list`"
	if contracts.ValidKey(messageID) {
		out += " and replay it with `cafe dead replay --id " + messageID + "`"
	}
	return out
}

// deliver publishes body to the app: Done once the MQTT broker acknowledged
// it, back to the queue otherwise (see the package doc).
func (c *Caller) deliver(ctx context.Context, meta contracts.ResultMeta, body []byte, outcome string) amqplink.Verdict {
	if err := c.waitConnected(ctx); err != nil {
		if ctx.Err() != nil {
			return amqplink.GiveBack("the caller is shutting down with the MQTT broker unreachable", who(meta)...)
		}
		return amqplink.Retry("mqtt broker unreachable for "+c.cfg.WaitMQTT.String(), who(meta)...)
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.PublishTimeout)
	sent := time.Now()
	err := c.links.MQTT.Publish(pctx, mqttlink.Message{Topic: contracts.ResultsTopic(meta.ClientID), Payload: body, QoS: 1})
	cancel()
	if err != nil {
		return amqplink.Retry("mqtt broker did not acknowledge the result: "+err.Error(), who(meta)...)
	}
	now := time.Now()
	c.m.publish.Observe(now.Sub(sent).Seconds())
	if !meta.AcceptedAt.IsZero() && outcome == outcomeDelivered {
		c.m.endToEnd.Observe(now.Sub(meta.AcceptedAt).Seconds())
	}
	c.m.results.WithLabelValues(outcome).Inc()
	if outcome != outcomeStatusNotice {
		c.postDelivered(meta, now)
	}
	if c.log.Enabled(ctx, slog.LevelDebug) {
		c.log.Debug("result delivered", append(who(meta), "device_id", meta.DeviceID, "outcome", meta.Outcome)...)
	}
	return amqplink.Done()
}

// who are the log attributes of a result, made only when something is
// logged (the slice and the boxed strings are allocations).
func who(meta contracts.ResultMeta) []any {
	return []any{"client_id", meta.ClientID, "msg_id", meta.MsgID}
}

// expired is a context that is already done.
var expired = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// waitConnected waits up to WaitMQTT for the MQTT link. WaitConnected
// returns at once when the link is up, whatever its context, so the usual
// case is asked first with an expired context: the timer and contexts of
// the bounded wait are then made only while the link is down.
func (c *Caller) waitConnected(ctx context.Context) error {
	if c.links.MQTT.WaitConnected(expired) == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WaitMQTT)
	defer cancel()
	return c.links.MQTT.WaitConnected(wctx)
}

// postDelivered tells the ledger, fire and forget: the result is
// delivered whether or not the event arrives (see contracts.Event).
func (c *Caller) postDelivered(meta contracts.ResultMeta, at time.Time) {
	if c.events == nil || !contracts.ValidKey(meta.CommandID) {
		return
	}
	ev := contracts.NewEvent(contracts.EventDelivered, meta.CommandID, meta.ClientID, meta.DeviceID, meta.MsgID, at)
	if err := c.events.Add(c.top.EventsExchange(), "", ev); err != nil {
		c.m.unsent.Inc()
	}
}

func (c *Caller) decode(d *amqp.Delivery) (contracts.ResultMeta, error) {
	if err := identity.CheckPublisher(d.UserId, c.cfg.ResultPublishers, identity.SettingResultPublishers); err != nil {
		return contracts.ResultMeta{}, err
	}
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return meta, err
	}
	if len(d.Body) > contracts.MaxResultBytes {
		return meta, fmt.Errorf("body is %d bytes, over the %d-byte limit", len(d.Body), contracts.MaxResultBytes)
	}
	if body := bytes.TrimSpace(d.Body); len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return meta, errors.New("body is not a JSON object")
	}
	return meta, nil
}
