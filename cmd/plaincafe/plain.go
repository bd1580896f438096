package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
	"cafe/contracts/registry"
)

// plain is the whole pipeline of plaincafe.
type plain struct {
	cfg      config
	log      *slog.Logger
	reg      atomic.Pointer[registry.Registry]
	key      identity.Key // the session key: apps' MQTT passwords
	conn     *amqp.Connection
	pubMu    sync.Mutex // one publisher channel, its publishes serialised
	pub      *amqp.Channel
	toDevice mqtt.Client // as cafe-barista
	toApp    mqtt.Client // as cafe-caller
	route    string      // the reply-topic level of this process
	replies  sync.Map    // command id → chan []byte
	failed   chan error
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

type withRole func(raw, builtin string, role identity.Service) string

// start connects everything, declares the queues and starts serving.
func start(cfg config, creds withRole, log *slog.Logger) (*plain, error) {
	p := &plain{cfg: cfg, log: log, route: "plain" + contracts.NewCommandID()[:8], failed: make(chan error, 4)}
	reg, err := registry.Load(cfg.clientsFile)
	if err != nil {
		return nil, err
	}
	p.reg.Store(reg)
	if k, err := local.ReadKey(); err == nil {
		p.key = k.SessionKey()
	}
	if p.conn, err = amqp.Dial(creds(cfg.amqpURL, amqplink.DefaultURL, identity.Admin)); err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	if err := p.declare(); err != nil {
		_ = p.conn.Close()
		return nil, err
	}
	if err := p.connectMQTT(creds); err != nil {
		_ = p.conn.Close()
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	if err := p.consume(ctx, p.commands(), p.handleCommand); err != nil {
		p.close()
		return nil, err
	}
	if err := p.consume(ctx, p.results(), p.deliverResult); err != nil {
		p.close()
		return nil, err
	}
	p.wg.Go(func() {
		local.NewWatcher(cfg.clientsFile).Run(ctx, local.WatchInterval, p.reload)
	})
	if err := p.serveHTTP(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *plain) commands() string { return p.cfg.prefix + ".commands" }
func (p *plain) results() string  { return p.cfg.prefix + ".results" }

func (p *plain) reload() {
	if reg, err := registry.Load(p.cfg.clientsFile); err == nil {
		p.reg.Store(reg)
	}
}

// declare makes the two quorum queues, with the limits cafe's have, and
// the confirm-mode publisher channel. Messages go through the default
// exchange.
func (p *plain) declare() error {
	ch, err := p.conn.Channel()
	if err != nil {
		return err
	}
	for _, q := range []struct {
		name string
		max  int
	}{{p.commands(), contracts.DefaultCommandsMaxLength}, {p.results(), contracts.DefaultResultsMaxLength}} {
		args := amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": contracts.DefaultDeliveryLimit, "x-max-length": q.max, "x-overflow": "reject-publish"}
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, args); err != nil {
			return fmt.Errorf("declare %s: %w", q.name, err)
		}
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	p.pub = ch
	p.watch(ch.NotifyClose(make(chan *amqp.Error, 1)))
	return nil
}

// watch reports a channel's end as the process's failure.
func (p *plain) watch(closed chan *amqp.Error) {
	go func() {
		if e, ok := <-closed; ok && e != nil {
			p.failed <- e
		}
	}()
}

// publish publishes msg to queue and waits for its confirm.
func (p *plain) publish(ctx context.Context, queue string, msg amqp.Publishing) error {
	msg.DeliveryMode = amqp.Persistent
	p.pubMu.Lock()
	dc, err := p.pub.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	p.pubMu.Unlock()
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("rabbitmq nacked the message")
	}
	return nil
}

// consume starts a consumer of queue on a channel of its own and one
// goroutine per delivery.
func (p *plain) consume(ctx context.Context, queue string, handle func(context.Context, amqp.Delivery)) error {
	ch, err := p.conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(p.cfg.prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	p.watch(ch.NotifyClose(make(chan *amqp.Error, 1)))
	p.wg.Go(func() {
		for d := range deliveries {
			go handle(ctx, d)
		}
	})
	return nil
}

// handleCommand sends the command to its device, waits for the reply (or
// the deadline), publishes the result, and only then acks the command.
func (p *plain) handleCommand(ctx context.Context, d amqp.Delivery) {
	meta, err := contracts.ParseCommandMeta(d.MessageId, d.Headers)
	if err != nil {
		_ = d.Reject(false)
		return
	}
	reply, outcome := p.askDevice(ctx, meta, d.Body)
	if meta.MsgID == "" { // a one-way command: no result
		_ = d.Ack(false)
		return
	}
	res := contracts.ResultMeta{CommandID: meta.CommandID, ClientID: meta.ClientID, DeviceID: meta.DeviceID, MsgID: meta.MsgID, AcceptedAt: meta.AcceptedAt, Outcome: outcome}
	err = p.publish(ctx, p.results(), amqp.Publishing{MessageId: meta.CommandID, ContentType: contracts.ContentTypeJSON, Headers: res.Headers(), Body: reply})
	if err != nil {
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// askDevice publishes the command on the device's topic and waits for its
// reply until the command's deadline.
func (p *plain) askDevice(ctx context.Context, meta contracts.CommandMeta, body []byte) ([]byte, contracts.Outcome) {
	id := []byte(meta.MsgID)
	if time.Now().After(meta.Deadline) {
		return contracts.ErrorResponse(id, contracts.NewError(contracts.CodeExpired, nil)), contracts.OutcomeExpired
	}
	got := make(chan []byte, 1)
	p.replies.Store(meta.CommandID, got)
	defer p.replies.Delete(meta.CommandID)
	tok := p.toDevice.Publish(contracts.CommandTopic(meta.DeviceID, p.route, meta.CommandID), 1, false, body)
	wait, cancel := context.WithDeadline(ctx, meta.Deadline)
	defer cancel()
	select {
	case <-tok.Done():
	case <-wait.Done():
	}
	if tok.Error() != nil {
		return contracts.ErrorResponse(id, contracts.NewError(contracts.CodeDeviceUnreachable, nil)), contracts.OutcomeUnreachable
	}
	select {
	case r := <-got:
		return r, contracts.OutcomeReply
	case <-wait.Done():
		return contracts.ErrorResponse(id, contracts.NewError(contracts.CodeDeviceTimeout, nil)), contracts.OutcomeTimeout
	}
}

// onReply hands a device's reply to the command waiting for it.
func (p *plain) onReply(_ mqtt.Client, m mqtt.Message) {
	_, _, key, ok := contracts.ParseReplyTopic(m.Topic())
	if !ok {
		return
	}
	if w, ok := p.replies.Load(key); ok {
		select {
		case w.(chan []byte) <- m.Payload():
		default:
		}
	}
}

// deliverResult publishes a result to its app at QoS 1 and acks it once
// Mosquitto has.
func (p *plain) deliverResult(ctx context.Context, d amqp.Delivery) {
	meta, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		_ = d.Reject(false)
		return
	}
	tok := p.toApp.Publish(contracts.ResultsTopic(meta.ClientID), 1, false, d.Body)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		_ = d.Nack(false, true)
		return
	}
	_ = d.Ack(false)
}

// connectMQTT connects the two MQTT clients and subscribes to the replies.
func (p *plain) connectMQTT(creds withRole) error {
	var err error
	if p.toDevice, err = dialMQTT(creds(p.cfg.mqttURL, mqttlink.DefaultURL, identity.Barista), p.route); err != nil {
		return err
	}
	if tok := p.toDevice.Subscribe(contracts.RepliesFilter(p.route), 1, p.onReply); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe to the replies: %v", tok.Error())
	}
	p.toApp, err = dialMQTT(creds(p.cfg.mqttURL, mqttlink.DefaultURL, identity.Caller), p.route+"-caller")
	return err
}

func dialMQTT(raw, clientID string) (mqtt.Client, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	o := mqtt.NewClientOptions().AddBroker(u.Scheme + "://" + u.Host).SetClientID(clientID).SetAutoReconnect(false).SetOrderMatters(false)
	if u.User != nil {
		pw, _ := u.User.Password()
		o.SetUsername(u.User.Username()).SetPassword(pw)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt %s as %s: %v", u.Host, clientID, tok.Error())
	}
	return c, nil
}

// withoutUser is raw without the user and password it may hold (the
// broker plaincafe logs in to, as the apps' broker).
func withoutUser(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.User = nil
	return u.String()
}

func (p *plain) close() {
	if p.stop != nil {
		p.stop()
	}
	for _, c := range []mqtt.Client{p.toDevice, p.toApp} {
		if c != nil {
			c.Disconnect(250)
		}
	}
	_ = p.conn.Close()
	p.wg.Wait()
}
