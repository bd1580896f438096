package run

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/barista"
	"cafe/caller"
	"cafe/cashier"
	"cafe/cmd/internal/cli"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// Cashier is the cashier with its RabbitMQ link.
type Cashier struct {
	link    *amqplink.Link
	pub     *amqplink.Publisher
	server  *cashier.Server
	regFile string
	log     *slog.Logger
}

// NewCashier loads the client registry, binds the HTTP address and prepares
// the link; nothing connects until Run.
func NewCashier(b cli.Brokers, s CashierSettings, prom *prometheus.Registry, log *slog.Logger) (*Cashier, error) {
	if s.ClientsFile == "" {
		return nil, errors.New("no client registry: set CAFE_CLIENTS_FILE (or --clients-file) to a YAML file; `cafe clients add --id APP --devices 'PATTERN'` creates one")
	}
	reg, err := cashier.LoadRegistry(s.ClientsFile)
	if err != nil {
		return nil, err
	}
	top := b.Topology()
	link, err := amqplink.New(amqplink.Config{URL: b.AMQPURL, Topology: top, Name: "cafe-cashier"}, log)
	if err != nil {
		return nil, err
	}
	pub := amqplink.NewPublisher(link, log)
	srv, err := cashier.New(s.Config, reg, pub, top, prom, log)
	if err != nil {
		return nil, err
	}
	log.Info("client registry loaded", "file", s.ClientsFile, "clients", reg.Len())
	return &Cashier{link: link, pub: pub, server: srv, regFile: s.ClientsFile, log: log}, nil
}

// Addr is the HTTP address.
func (c *Cashier) Addr() net.Addr { return c.server.Addr() }

// Ready says why the cashier cannot queue commands, or nil.
func (c *Cashier) Ready() error {
	if !c.pub.Ready() {
		return errors.New("no confirmed-publish channel to RabbitMQ")
	}
	return nil
}

// Reload re-reads the client registry; on error the old one stays.
func (c *Cashier) Reload() error {
	reg, err := cashier.LoadRegistry(c.regFile)
	if err != nil {
		return err
	}
	c.server.SetRegistry(reg)
	c.log.Info("client registry reloaded", "file", c.regFile, "clients", reg.Len())
	return nil
}

// Run serves until ctx is done, drains, then closes the link.
func (c *Cashier) Run(ctx context.Context) error {
	stop, wait := background(ctx, c.link.Run, c.pub.Run)
	err := c.server.Run(ctx)
	stop()
	wait()
	return err
}

// Barista is a barista with its links: one AMQP connection to consume, one
// to publish results (so a blocked publisher never holds back acks), and a
// persistent MQTT session.
type Barista struct {
	consume  *amqplink.Link
	publish  *amqplink.Link
	results  *amqplink.Publisher
	mqtt     *mqttlink.Link // commands and replies: a persistent session
	presence *mqttlink.Link // presence: a clean session (see barista.Links)
	barista  *barista.Barista
}

// NewBarista prepares a barista; nothing connects until Run.
func NewBarista(b cli.Brokers, s BaristaSettings, prom *prometheus.Registry, log *slog.Logger) (*Barista, error) {
	cfg := s.Config
	if cfg.Route == "" {
		cfg.Route = barista.NewRoute()
	}
	top := b.Topology()
	consume, err := amqplink.New(amqplink.Config{URL: b.AMQPURL, Topology: top, Name: "cafe-barista-" + cfg.Route + "-consume"}, log)
	if err != nil {
		return nil, err
	}
	publish, err := amqplink.New(amqplink.Config{URL: b.AMQPURL, Topology: top, Name: "cafe-barista-" + cfg.Route + "-publish"}, log)
	if err != nil {
		return nil, err
	}
	mq, err := mqttlink.New(mqttlink.Config{URL: b.MQTTURL, ClientID: "cafe-barista-" + cfg.Route, CleanSession: false}, log)
	if err != nil {
		return nil, err
	}
	presence, err := mqttlink.New(mqttlink.Config{URL: b.MQTTURL, ClientID: "cafe-barista-" + cfg.Route + "-presence", CleanSession: true}, log)
	if err != nil {
		return nil, err
	}
	results := amqplink.NewPublisher(publish, log)
	bar, err := barista.New(cfg, top, barista.Links{Commands: consume, Results: results, Devices: mq, Presence: presence}, prom, log)
	if err != nil {
		return nil, err
	}
	if err := prom.Register(consume.QueueCollector()); err != nil {
		return nil, err
	}
	return &Barista{consume: consume, publish: publish, results: results, mqtt: mq, presence: presence, barista: bar}, nil
}

// Route is the barista's route level.
func (b *Barista) Route() string { return b.barista.Route() }

// Ready says why the barista cannot work, or nil.
func (b *Barista) Ready() error {
	var errs []error
	if !b.consume.Ready() {
		errs = append(errs, errors.New("no RabbitMQ connection to consume commands"))
	}
	if !b.results.Ready() {
		errs = append(errs, errors.New("no RabbitMQ channel to publish results"))
	}
	if !b.mqtt.Connected() || !b.presence.Connected() {
		errs = append(errs, errors.New("not connected to the MQTT broker"))
	}
	return errors.Join(errs...)
}

// Run works until ctx is done, finishes or hands back the commands in hand,
// then closes its links (and drops its MQTT session: its route dies with it).
func (b *Barista) Run(ctx context.Context) error {
	stop, wait := background(ctx, b.consume.Run, b.publish.Run, b.results.Run)
	b.mqtt.Start()
	b.presence.Start()
	err := b.barista.Run(ctx)
	stop()
	wait()
	b.mqtt.Close(250*time.Millisecond, true)
	b.presence.Close(250*time.Millisecond, false)
	return err
}

// Caller is a caller with its links.
type Caller struct {
	link   *amqplink.Link
	mqtt   *mqttlink.Link
	caller *caller.Caller
}

// NewCaller prepares a caller; nothing connects until Run.
func NewCaller(b cli.Brokers, s CallerSettings, prom *prometheus.Registry, log *slog.Logger) (*Caller, error) {
	cfg := s.Config
	if cfg.Instance == "" {
		cfg.Instance = caller.NewInstance()
	}
	top := b.Topology()
	link, err := amqplink.New(amqplink.Config{URL: b.AMQPURL, Topology: top, Name: "cafe-caller-" + cfg.Instance}, log)
	if err != nil {
		return nil, err
	}
	mq, err := mqttlink.New(mqttlink.Config{URL: b.MQTTURL, ClientID: "cafe-caller-" + cfg.Instance, CleanSession: false}, log)
	if err != nil {
		return nil, err
	}
	c, err := caller.New(cfg, top, link, mq, prom, log)
	if err != nil {
		return nil, err
	}
	return &Caller{link: link, mqtt: mq, caller: c}, nil
}

// Ready says why the caller cannot work, or nil.
func (c *Caller) Ready() error {
	var errs []error
	if !c.link.Ready() {
		errs = append(errs, errors.New("no RabbitMQ connection to consume results"))
	}
	if !c.mqtt.Connected() {
		errs = append(errs, errors.New("not connected to the MQTT broker"))
	}
	return errors.Join(errs...)
}

// Run delivers until ctx is done, finishes or hands back what it holds,
// then closes its links.
func (c *Caller) Run(ctx context.Context) error {
	stop, wait := background(ctx, c.link.Run)
	c.mqtt.Start()
	err := c.caller.Run(ctx)
	stop()
	wait()
	c.mqtt.Close(250*time.Millisecond, true)
	return err
}

// background runs fns on a context that outlives ctx until stop is called,
// so links stay up while the role that uses them shuts down.
func background(ctx context.Context, fns ...func(context.Context) error) (stop func(), wait func()) {
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Go(func() { _ = fn(bctx) })
	}
	return cancel, wg.Wait
}
