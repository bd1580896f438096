package cashier

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cashier's Prometheus collectors. Labels are bounded: HTTP
// status codes and a fixed set of results, never a client or device id.
type metrics struct {
	requests *prometheus.CounterVec // by HTTP status
	commands *prometheus.CounterVec // accepted / refused
	confirm  prometheus.Histogram   // publish → broker confirm
	accept   prometheus.Histogram   // request arrival → 202 written
}

// latencyBuckets span 250µs to 10s: a confirm on an idle broker takes about
// 2 ms, a slow one hits the confirm timeout.
var latencyBuckets = []float64{.00025, .0005, .001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2.5, 5, 10}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_cashier_http_requests_total",
			Help: "Command submissions by HTTP status code.",
		}, []string{"code"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_cashier_commands_total",
			Help: "Commands by result: accepted (confirmed by RabbitMQ, 202) or refused (not confirmed, 503).",
		}, []string{"result"}),
		confirm: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cafe_cashier_publish_confirm_seconds",
			Help:    "Time from publishing a command to RabbitMQ's publisher confirm.",
			Buckets: latencyBuckets,
		}),
		accept: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cafe_cashier_accept_seconds",
			Help:    "Time from a request's arrival to its 202 answer.",
			Buckets: latencyBuckets,
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.commands, m.confirm, m.accept} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the common series so dashboards see zeros, not gaps.
	for _, code := range []int{202, 400, 401, 403, 413, 429, 503} {
		m.requests.WithLabelValues(strconv.Itoa(code))
	}
	m.commands.WithLabelValues("accepted")
	m.commands.WithLabelValues("refused")
	return m, nil
}
