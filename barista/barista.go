package barista

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/sony/gobreaker/v2"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/mqttlink"
)

// CommandSource is what the barista needs of the commands queue: a
// consumer that settles each command from the verdict the barista returns.
type CommandSource interface {
	Consume(ctx context.Context, cfg amqplink.ConsumerConfig, log *slog.Logger, h amqplink.Handler) error
}

// ResultPublisher is what the barista needs to publish results: nil only
// once RabbitMQ confirmed the message; and a gate that is ready while
// results can be published (connected, not blocked by a resource alarm).
type ResultPublisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
	PublishGate() amqplink.Gate
}

// EventPoster is what the barista needs to tell the ledger a command was
// sent: a fire-and-forget publish (see contracts.Event).
type EventPoster interface {
	Post(exchange, key string, msg amqp.Publishing) error
}

// Watcher is what the barista needs to follow the devices' presence: a
// subscription, and a gate that is ready once the retained presence
// messages have been handled.
type Watcher interface {
	Subscribe(ctx context.Context, filter string, qos byte, h mqttlink.Handler) error
	amqplink.Gate
}

// Links are the barista's connections to the brokers.
//
// Devices carries commands and replies on a persistent MQTT session (a
// reply sent while the link is briefly down waits in the broker). Presence
// may be the same link, but in a deployment it is a separate one with a
// clean session: presence is retained, so it needs no session, and a
// persistent session would keep collecting every device's presence changes
// for a barista that was killed and never comes back.
type Links struct {
	Commands CommandSource
	Results  ResultPublisher
	Devices  MQTT
	Presence Watcher
	// Events receives the "sent" events (optional: none without it).
	Events EventPoster
	// Notices sends "sent" status notices (Cafe-Events) on the results
	// exchange: the results publisher's own channel, so that a notice goes
	// before its result (optional: none without it).
	Notices EventPoster
	// Metrics counts the consumer's verdicts (optional; shared per process).
	Metrics *amqplink.ConsumerMetrics
}

// Barista takes commands from the queue, acts on devices, and publishes
// results.
type Barista struct {
	cfg      Config
	log      *slog.Logger
	top      contracts.Topology
	commands CommandSource
	results  ResultPublisher
	mqtt     MQTT
	watch    Watcher
	m        *metrics
	consumed *amqplink.ConsumerMetrics

	resultsExchange string // top.ResultsExchange(), made once rather than per result

	presence *Presence
	replies  *Replies
	breakers *Breakers
	chain    Handler
	events   *contracts.EventBatcher // the "sent" events, in batches; nil without Links.Events
}

// New builds a barista. Nothing runs until Run.
func New(cfg Config, top contracts.Topology, links Links, prom prometheus.Registerer, log *slog.Logger) (*Barista, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if links.Presence == nil {
		links.Presence = links.Devices
	}
	log = log.With("route", cfg.Route)
	b := &Barista{cfg: cfg, log: log, top: top, commands: links.Commands, results: links.Results, mqtt: links.Devices, watch: links.Presence, consumed: links.Metrics,
		resultsExchange: top.ResultsExchange()}
	var m *metrics
	b.presence = NewPresence(log, func() { m.badPresence.Inc() })
	b.replies = NewReplies(cfg.Route, log, func(reason string) { m.stray.WithLabelValues(reason).Inc() })
	b.breakers = NewBreakers(cfg.Breaker, time.Now, func(device string, to gobreaker.State) {
		m.breakers.WithLabelValues(to.String()).Inc()
		log.Info("device circuit breaker changed", "device_id", device, "state", to.String())
	})
	var err error
	if m, err = newMetrics(prom, b.presence, b.replies, b.breakers); err != nil {
		return nil, err
	}
	b.m = m
	if links.Events != nil {
		b.events = contracts.NewEventBatcher(links.Events.Post, func(n int) { m.eventsLost.Add(float64(n)) })
	}
	b.chain = Chain(
		Device(links.Devices, b.replies, cfg.Route, cfg.MaxReplyBytes, DeviceHooks{
			Sent:      b.sentEvent(b.events, links.Notices),
			ReplyTime: func(d time.Duration) { m.replyTime.Observe(d.Seconds()) },
		}),
		Recover(log),
		Deadline(time.Now, b.cfg.MaxTimeout),
		CheckPresence(b.presence),
		Guard(b.breakers),
	)
	return b, nil
}

// sentEvent posts a "sent" event for each command, and a "sent" notice for
// those whose app asked for notices, fire and forget: a lost one costs a
// line of history, and waiting would cost every command a quorum commit.
// Nil without a poster; no events without events (no ledger), the notices
// still.
func (b *Barista) sentEvent(events *contracts.EventBatcher, notices EventPoster) func(*Command) {
	if events == nil && notices == nil {
		return nil
	}
	return func(cmd *Command) {
		m := cmd.Meta
		now := time.Now()
		var err error
		if events != nil {
			err = events.Add(b.top.EventsExchange(), "", contracts.NewEvent(contracts.EventSent, m.CommandID, m.ClientID, m.DeviceID, m.MsgID, now))
		}
		if err == nil && m.Notices && m.MsgID != "" && notices != nil {
			err = notices.Post(b.top.ResultsExchange(), contracts.RoutingKeyResult, contracts.Notice(m, contracts.NoticeSent, now))
		}
		if err != nil {
			b.m.eventsLost.Inc()
		}
	}
}

// consumerName labels the barista's consumer in logs and metrics.
const consumerName = "barista"

// Route is this barista's route level.
func (b *Barista) Route() string { return b.cfg.Route }

// Run subscribes to replies and presence, then handles commands until ctx
// is done; it returns once the commands in hand are finished or handed back
// (within Config.Grace). It takes commands only while its MQTT link is up
// and the devices' retained presence has been read, and while its results
// can be published: a barista that could not finish a command leaves the
// queue to the others.
func (b *Barista) Run(ctx context.Context) error {
	for _, sub := range []struct {
		link interface {
			Subscribe(context.Context, string, byte, mqttlink.Handler) error
		}
		filter string
		h      mqttlink.Handler
	}{
		{b.mqtt, contracts.RepliesFilter(b.cfg.Route), b.replies.OnMessage},
		{b.watch, contracts.PresenceFilter, b.presence.OnMessage},
	} {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := sub.link.Subscribe(sctx, sub.filter, 1, sub.h); err != nil {
			b.log.Warn("subscribe failed; renewed on the next connection", "filter", sub.filter, "err", err)
		}
		cancel()
	}
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sweep.C:
				b.breakers.Sweep()
			}
		}
	}()
	b.consumed.Start(consumerName)
	defer b.events.Flush() // before the links close
	return b.commands.Consume(ctx, amqplink.ConsumerConfig{
		Queue:       b.top.CommandsQueue(),
		Name:        consumerName,
		Metrics:     b.consumed,
		Tag:         "barista-" + b.cfg.Route,
		Concurrency: b.cfg.Concurrency,
		Grace:       b.cfg.Grace,
		Gates:       []amqplink.Gate{b.mqtt, b.watch, b.results.PublishGate()},
	}, b.log, b.handle)
}
