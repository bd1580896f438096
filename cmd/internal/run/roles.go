package run

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/barista"
	"cafe/caller"
	"cafe/caller/ledger"
	"cafe/cashier"
	"cafe/cmd/internal/cli"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
	"cafe/contracts/records"
	"cafe/contracts/registry"
)

// Each role below owns its broker links. Its Run stops the role first (the
// cashier drains HTTP, the barista and caller finish or hand back what
// they hold) and only then the links, so nothing in flight loses its
// broker. Nothing connects before Run.

// Compile-time checks that the links are what the roles declare they need.
var (
	_ cashier.Queue           = (*amqplink.Publisher)(nil)
	_ barista.CommandSource   = (*amqplink.Link)(nil)
	_ barista.ResultPublisher = (*amqplink.Publisher)(nil)
	_ barista.MQTT            = (*mqttlink.Link)(nil)
	_ barista.Watcher         = (*mqttlink.Link)(nil)
	_ caller.ResultSource     = (*amqplink.Link)(nil)
	_ caller.MQTT             = (*mqttlink.Link)(nil)
	_ barista.EventPoster     = (*amqplink.Publisher)(nil)
	_ caller.EventPoster      = (*amqplink.Publisher)(nil)
	_ ledger.EventSource      = (*amqplink.Link)(nil)
	_ ledger.Store            = (*records.Store)(nil)
	_ cashier.Records         = (*records.Store)(nil)
	_ cashier.Poster          = (*amqplink.Publisher)(nil)
)

// Cashier is the cashier with its RabbitMQ link.
type Cashier struct {
	link    *amqplink.Link
	pub     *amqplink.Publisher
	notices *amqplink.Publisher
	server  *cashier.Server
	store   *records.Store // nil without CAFE_POSTGRES_URL
	regFile string
	watcher *local.Watcher
	log     *slog.Logger
}

// NewCashier loads the client registry, binds the HTTP address and prepares
// the link.
func NewCashier(b cli.Brokers, s CashierSettings, prom *prometheus.Registry, log *slog.Logger) (*Cashier, error) {
	if s.ClientsFile == "" {
		return nil, errors.New("no client registry: set " + SettingClientsFile.String() + " to a YAML file; `cafe clients add --id APP --devices 'PATTERN'` creates one")
	}
	watcher := local.NewWatcher(s.ClientsFile) // before the read: no change is missed
	reg, err := registry.Load(s.ClientsFile)
	if err != nil {
		return nil, err
	}
	if s.Config.SessionKey, err = SessionKey(s.SessionKeyFile); err != nil {
		return nil, err
	}
	if !s.Config.SessionKey.Valid() {
		log.Warn("no session key: POST /v1/sessions answers 503 (set " + SettingSessionKeyFile.String() + ")")
	}
	link, err := amqplink.New(b.AMQP(identity.Cashier, "cafe-cashier"), log)
	if err != nil {
		return nil, err
	}
	pub := amqplink.NewPublisher(link, log)
	notices := amqplink.NewPublisher(link, log) // its own channel: see Post
	srv, err := cashier.New(s.Config, reg, pub, b.Topology(), prom, log)
	if err != nil {
		return nil, err
	}
	srv.UseNotices(notices)
	if !b.Topology().Unrecorded { // no ledger: nothing is bound to the refused key
		srv.UseRefusals(notices) // fire and forget too: the same channel
	}
	var store *records.Store
	// An unrecorded pipeline (cafe up --ledgers 0) binds nothing to the
	// events queue, so no ledger can record its commands: reading records
	// would only cost every submission a duplicate-id lookup that finds
	// nothing (and GET /v1/commands old records), so the cashier keeps none.
	if b.PostgresURL != "" && !b.Topology().Unrecorded {
		// Read-only transactions whatever the URL's role may do; the
		// pool dials when first used, so PostgreSQL may be down at start.
		if store, err = records.Open(b.PostgresURL, true, 8); err != nil {
			return nil, err
		}
		srv.UseRecords(store)
	}
	log.Info("registry loaded", "file", s.ClientsFile, "clients", reg.Len(), "devices", len(reg.Devices()))
	return &Cashier{link: link, pub: pub, notices: notices, server: srv, store: store, regFile: s.ClientsFile, watcher: watcher, log: log}, nil
}

// Addr is the HTTP address.
func (c *Cashier) Addr() net.Addr { return c.server.Addr() }

// Scheme is http, or https when the cashier was given a certificate.
func (c *Cashier) Scheme() string { return c.server.Scheme() }

// SessionKey is the cashier's session key: the key in file, or without
// one the session key derived from this machine's auth key if it can be
// read (the zero Key if not).
func SessionKey(file string) (identity.Key, error) {
	if file != "" {
		return identity.LoadKey(file)
	}
	k, err := local.ReadKey()
	if err != nil {
		return identity.Key{}, nil
	}
	return k.SessionKey(), nil
}

// Ready says why the cashier cannot queue commands, or nil.
func (c *Cashier) Ready() error {
	if !c.pub.Ready() {
		return errors.New("cashier: no confirmed-publish channel to RabbitMQ")
	}
	return nil
}

// Reload re-reads the client registry; on error the old one stays.
func (c *Cashier) Reload() error {
	reg, err := registry.Load(c.regFile)
	if err != nil {
		return err
	}
	c.server.SetRegistry(reg)
	c.log.Info("registry reloaded", "file", c.regFile, "clients", reg.Len(), "devices", len(reg.Devices()))
	return nil
}

// Run serves until ctx is done, drains, then closes the link. It reloads
// the registry whenever the file changes (and on SIGHUP, see Pipeline), so
// an app or device added, rotated or removed takes effect within a second.
func (c *Cashier) Run(ctx context.Context) error {
	watch := func(ctx context.Context) error {
		c.watcher.Run(ctx, local.WatchInterval, func() {
			if err := c.Reload(); err != nil {
				c.log.Error("registry changed but is not valid; keeping the old one", "err", err)
			}
		})
		return nil
	}
	stop, wait := background(ctx, c.link.Run, c.pub.Run, c.notices.Run, watch)
	err := c.server.Run(ctx)
	stop()
	wait()
	if c.store != nil {
		c.store.Close()
	}
	return err
}

// Barista is a barista with its links: one AMQP connection to consume, one
// to publish results (so a blocked publisher never holds back acks), a
// persistent MQTT session for commands and replies, and a clean one for
// presence (see barista.Links).
type Barista struct {
	worker
	barista *barista.Barista
}

// worker is a barista or a caller with the links it owns.
type worker struct {
	name  string
	links []func(context.Context) error // every link's Run
	ready []readiness
	run   func(context.Context) error // the role's own Run
}

// readiness is one thing a role needs, and what to say when it is missing.
type readiness struct {
	ok   func() bool
	what string
}

// Ready says why the worker cannot work, or nil.
func (w *worker) Ready() error {
	var errs []error
	for _, r := range w.ready {
		if !r.ok() {
			errs = append(errs, errors.New(w.name+": "+r.what))
		}
	}
	return errors.Join(errs...)
}

// Run works until ctx is done, finishes or hands back the work in hand,
// then closes the links (a barista drops its MQTT session: its route dies
// with it).
func (w *worker) Run(ctx context.Context) error {
	stop, wait := background(ctx, w.links...)
	err := w.run(ctx)
	stop()
	wait()
	return err
}

// NewBarista prepares a barista.
func NewBarista(b cli.Brokers, s BaristaSettings, prom *prometheus.Registry, log *slog.Logger) (*Barista, error) {
	cfg := s.Config
	if cfg.Route == "" {
		cfg.Route = barista.NewRoute()
	}
	name := "cafe-barista-" + cfg.Route
	consume, err := amqplink.New(b.AMQP(identity.Barista, name+"-consume"), log)
	if err != nil {
		return nil, err
	}
	publish, err := amqplink.New(b.AMQP(identity.Barista, name+"-publish"), log)
	if err != nil {
		return nil, err
	}
	devices := b.MQTT(identity.Barista, name)
	devices.ForgetSession = true // the route dies with this barista
	mq, err := mqttlink.New(devices, log)
	if err != nil {
		return nil, err
	}
	watch := b.MQTT(identity.Barista, name+"-presence")
	watch.CleanSession = true
	presence, err := mqttlink.New(watch, log)
	if err != nil {
		return nil, err
	}
	consumed, err := amqplink.NewConsumerMetrics(prom)
	if err != nil {
		return nil, err
	}
	results := amqplink.NewPublisher(publish, log)
	links := barista.Links{Commands: consume, Results: results, Devices: mq, Presence: presence, Notices: results, Metrics: consumed}
	runs := []func(context.Context) error{consume.Run, publish.Run, results.Run, mq.Run, presence.Run}
	if !b.Topology().Unrecorded { // no ledger: no "sent" events
		events := amqplink.NewPublisher(publish, log) // its own channel: see Post
		links.Events, runs = events, append(runs, events.Run)
	}
	bar, err := barista.New(cfg, b.Topology(), links, prom, log)
	if err != nil {
		return nil, err
	}
	if err := prom.Register(consume.QueueCollector()); err != nil {
		return nil, err
	}
	return &Barista{barista: bar, worker: worker{
		name:  "barista",
		links: runs,
		ready: []readiness{
			{consume.Ready, "no RabbitMQ connection to consume commands"},
			{results.Ready, "no RabbitMQ channel to publish results"},
			{mq.Connected, "not connected to the MQTT broker (commands)"},
			{presence.Connected, "not connected to the MQTT broker (presence)"},
		},
		run: bar.Run,
	}}, nil
}

// Route is the barista's route level.
func (b *Barista) Route() string { return b.barista.Route() }

// Caller is a caller with its links.
type Caller struct{ worker }

// NewCaller prepares a caller.
func NewCaller(b cli.Brokers, s CallerSettings, prom *prometheus.Registry, log *slog.Logger) (*Caller, error) {
	cfg := s.Config
	if cfg.Instance == "" {
		cfg.Instance = caller.NewInstance()
	}
	name := "cafe-caller-" + cfg.Instance
	link, err := amqplink.New(b.AMQP(identity.Caller, name), log)
	if err != nil {
		return nil, err
	}
	apps := b.MQTT(identity.Caller, name)
	apps.ForgetSession = true
	mq, err := mqttlink.New(apps, log)
	if err != nil {
		return nil, err
	}
	consumed, err := amqplink.NewConsumerMetrics(prom)
	if err != nil {
		return nil, err
	}
	links := caller.Links{Results: link, MQTT: mq, Metrics: consumed}
	runs := []func(context.Context) error{link.Run, mq.Run}
	if !b.Topology().Unrecorded { // no ledger: no "delivered" events
		events := amqplink.NewPublisher(link, log)
		links.Events, runs = events, append(runs, events.Run)
	}
	c, err := caller.New(cfg, b.Topology(), links, prom, log)
	if err != nil {
		return nil, err
	}
	return &Caller{worker{
		name:  "caller",
		links: runs,
		ready: []readiness{
			{link.Ready, "no RabbitMQ connection to consume results"},
			{mq.Connected, "not connected to the MQTT broker"},
		},
		run: c.Run,
	}}, nil
}

// Ledger is a ledger with its RabbitMQ link and its database.
type Ledger struct{ worker }

// NewLedger prepares a ledger. It creates its database and migrates the
// schema when it starts (and keeps trying while PostgreSQL is down).
func NewLedger(b cli.Brokers, s LedgerSettings, prom *prometheus.Registry, log *slog.Logger) (*Ledger, error) {
	cfg := s.Config
	if cfg.Instance == "" {
		cfg.Instance = ledger.NewInstance()
	}
	link, err := amqplink.New(b.AMQP(identity.Ledger, "cafe-ledger-"+cfg.Instance), log)
	if err != nil {
		return nil, err
	}
	store, err := records.Open(b.PostgresURL, false, 4)
	if err != nil {
		return nil, err
	}
	consumed, err := amqplink.NewConsumerMetrics(prom)
	if err != nil {
		return nil, err
	}
	l, err := ledger.New(cfg, b.Topology(), ledger.Links{Events: link, Store: store, Metrics: consumed}, prom, log)
	if err != nil {
		return nil, err
	}
	var migrated atomic.Bool
	return &Ledger{worker{
		name:  "ledger",
		links: []func(context.Context) error{link.Run},
		ready: []readiness{
			{link.Ready, "no RabbitMQ connection to consume events"},
			{migrated.Load, "the ledger's database is not set up yet (is PostgreSQL at " + records.SettingURL.Env + " up?)"},
			{l.Healthy, "PostgreSQL refuses the ledger's writes"},
		},
		run: func(ctx context.Context) error {
			defer store.Close()
			if !prepareDatabase(ctx, b.PostgresURL, store, log) {
				return nil
			}
			migrated.Store(true)
			return l.Run(ctx)
		},
	}}, nil
}

// prepareDatabase creates the ledger's database if missing and migrates
// it, trying again every second until it succeeds or ctx is done.
func prepareDatabase(ctx context.Context, url string, store *records.Store, log *slog.Logger) bool {
	for warned := false; ; warned = true {
		err := records.CreateDatabase(ctx, url)
		if err == nil {
			err = store.Migrate(ctx)
		}
		if err == nil {
			return true
		}
		if !warned {
			log.Warn("cannot set up the ledger's database yet; trying again every second", "url", contracts.RedactURL(url), "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
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
