package barista

import (
	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts"
	"cafe/contracts/ops"
)

// metrics are the barista's Prometheus collectors; every label is bounded.
type metrics struct {
	commands    *prometheus.CounterVec // by outcome
	inFlight    prometheus.Gauge
	replyTime   prometheus.Histogram
	stray       *prometheus.CounterVec // dropped replies by reason
	badPresence prometheus.Counter
	breakers    *prometheus.CounterVec // state changes by new state
	queueWait   prometheus.Gauge
	eventsLost  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, presence *Presence, replies *Replies, breakers *Breakers) (*metrics, error) {
	m := &metrics{
		commands: ops.CounterVec("cafe_barista_commands_total",
			"Commands finished, by outcome: reply, offline, timeout, expired, unreachable, bad_reply, sent (one-way). "+
				`Poison, requeued and handed-back commands are in cafe_deliveries_total{consumer="barista"}.`, "outcome"),
		inFlight:  ops.Gauge("cafe_barista_commands_in_flight", "Commands being handled right now."),
		replyTime: ops.Histogram("cafe_barista_device_reply_seconds", "Time from publishing a command to the device's reply.", ops.LatencyBuckets),
		stray: ops.CounterVec("cafe_barista_stray_replies_total",
			"Device replies dropped, by reason: unknown_key (late or made up), wrong_device, repeat, bad_topic.", "reason"),
		badPresence: ops.Counter("cafe_barista_invalid_presence_total", "Presence messages that were not valid presence payloads (ignored)."),
		breakers:    ops.CounterVec("cafe_barista_breaker_transitions_total", "Per-device circuit breaker state changes, by new state.", "state"),
		queueWait: ops.Gauge("cafe_barista_queue_wait_seconds",
			"How long the command this barista received last had waited since the cashier accepted it: "+
				"while there is a backlog, about the age of the oldest waiting command (cafe status shows it)."),
		eventsLost: ops.Counter("cafe_barista_events_unsent_total", `"sent" events for the ledger that could not be posted (no channel to RabbitMQ).`),
	}
	err := ops.Register(reg, m.commands, m.inFlight, m.replyTime, m.stray, m.badPresence, m.breakers, m.queueWait, m.eventsLost,
		ops.GaugeFunc("cafe_barista_devices_known", "Devices whose presence this barista knows.", func() float64 { return float64(presence.Len()) }),
		ops.GaugeFunc("cafe_barista_breakers_open", "Devices whose circuit breaker is open (or half-open) in this barista.", func() float64 { return float64(breakers.Open()) }),
		ops.GaugeFunc("cafe_barista_replies_waiting", "Commands being sent to a device or waiting for its reply.", func() float64 { return float64(replies.Waiting()) }),
	)
	if err != nil {
		return nil, err
	}
	for _, o := range []contracts.Outcome{contracts.OutcomeReply, contracts.OutcomeOffline, contracts.OutcomeTimeout,
		contracts.OutcomeExpired, contracts.OutcomeUnreachable, contracts.OutcomeBadReply, contracts.OutcomeSent} {
		m.commands.WithLabelValues(string(o))
	}
	return m, nil
}
