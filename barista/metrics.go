package barista

import (
	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts"
)

// metrics are the barista's Prometheus collectors; every label is bounded.
type metrics struct {
	commands    *prometheus.CounterVec // by outcome
	inFlight    prometheus.Gauge
	replyTime   prometheus.Histogram
	stray       *prometheus.CounterVec // dropped replies by reason
	badPresence prometheus.Counter
	breakers    *prometheus.CounterVec // state changes by new state
}

func newMetrics(reg prometheus.Registerer, presence *Presence, replies *Replies) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_barista_commands_total",
			Help: "Commands finished, by outcome: reply, offline, timeout, expired, unreachable, bad_reply, sent (one-way). Poison, requeued and handed-back commands are in cafe_deliveries_total{consumer=\"barista\"}.",
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cafe_barista_commands_in_flight",
			Help: "Commands being handled right now.",
		}),
		replyTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cafe_barista_device_reply_seconds",
			Help:    "Time from publishing a command to the device's reply.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		stray: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_barista_stray_replies_total",
			Help: "Device replies dropped, by reason: unknown_key (late or made up), wrong_device, repeat, bad_topic.",
		}, []string{"reason"}),
		badPresence: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cafe_barista_invalid_presence_total",
			Help: "Presence messages that were not valid presence payloads (ignored).",
		}),
		breakers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_barista_breaker_transitions_total",
			Help: "Per-device circuit breaker state changes, by new state.",
		}, []string{"state"}),
	}
	known := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cafe_barista_devices_known",
		Help: "Devices whose presence this barista knows.",
	}, func() float64 { return float64(presence.Len()) })
	waiting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cafe_barista_replies_waiting",
		Help: "Commands being sent to a device or waiting for its reply.",
	}, func() float64 { return float64(replies.Waiting()) })
	for _, c := range []prometheus.Collector{m.commands, m.inFlight, m.replyTime, m.stray, m.badPresence, m.breakers, known, waiting} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []contracts.Outcome{contracts.OutcomeReply, contracts.OutcomeOffline, contracts.OutcomeTimeout,
		contracts.OutcomeExpired, contracts.OutcomeUnreachable, contracts.OutcomeBadReply, contracts.OutcomeSent} {
		m.commands.WithLabelValues(string(o))
	}
	return m, nil
}
