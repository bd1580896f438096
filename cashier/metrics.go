package cashier

import (
	"net"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts/ops"
)

// metrics are the cashier's Prometheus collectors. Labels are bounded: HTTP
// status codes and a fixed set of results, never a client or device id.
type metrics struct {
	requests  *prometheus.CounterVec // by HTTP status
	commands  *prometheus.CounterVec // accepted / refused
	dupChecks *prometheus.CounterVec // clear / conflict / skipped / open, per submission
	dupPairs  prometheus.Histogram   // ids per ledger query of the duplicate check
	confirm   prometheus.Histogram   // publish → broker confirm
	accept    prometheus.Histogram   // request arrival → 202 written
	conns     prometheus.Gauge       // open connections, at most MaxConns
	// refused events (notices.go refusal) lost: no channel to post them on
	refusalsUnsent prometheus.Counter
}

// dupPairBuckets span one id to a full query (dupBatchPairs; a lone
// submission of up to MaxBatchLimit ids is the last bucket's).
var dupPairBuckets = prometheus.ExponentialBuckets(1, 2, 11) // 1 … 1024

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: ops.CounterVec("cafe_cashier_http_requests_total", "Command submissions by HTTP status code.", "code"),
		commands: ops.CounterVec("cafe_cashier_commands_total", "Commands by result: accepted (confirmed by RabbitMQ, 202) or refused (not confirmed, 503).", "result"),
		dupChecks: ops.CounterVec("cafe_cashier_duplicate_checks_total",
			"Submissions checked in the ledger for ids still pending: clear, conflict (409), skipped (the database did not answer in time: accepted unchecked), open (not asked: its queries failed 3 times in a row; tried again after 5s). Concurrent submissions share queries (cafe_cashier_duplicate_lookup_pairs); each is counted here.", "result"),
		dupPairs: ops.Histogram("cafe_cashier_duplicate_lookup_pairs",
			"Ids per ledger query of the duplicate check: the ids of the submissions that queued while the previous query ran share one query.", dupPairBuckets),
		confirm: ops.Histogram("cafe_cashier_publish_confirm_seconds", "Time from publishing a command to RabbitMQ's publisher confirm.", ops.LatencyBuckets),
		accept:  ops.Histogram("cafe_cashier_accept_seconds", "Time from a request's arrival to its 202 answer.", ops.LatencyBuckets),
		conns:   ops.Gauge("cafe_cashier_http_connections", "Open HTTP connections; at CAFE_MAX_CONNS, new ones wait to be accepted."),
		refusalsUnsent: ops.Counter("cafe_cashier_refusals_unsent_total",
			"Refused events (RabbitMQ refused a command) that could not be posted to the ledger: each leaves its id pending (409) until past retention."),
	}
	if err := ops.Register(reg, m.requests, m.commands, m.dupChecks, m.dupPairs, m.confirm, m.accept, m.conns, m.refusalsUnsent); err != nil {
		return nil, err
	}
	// Pre-create the common series so dashboards see zeros, not gaps.
	for _, code := range []int{202, 400, 401, 403, 408, 413, 429, 503} {
		m.requests.WithLabelValues(strconv.Itoa(code))
	}
	m.commands.WithLabelValues("accepted")
	m.commands.WithLabelValues("refused")
	return m, nil
}

// countConns is the server's ConnState hook: it keeps conns current.
func (m *metrics) countConns(_ net.Conn, state http.ConnState) {
	switch state {
	case http.StateNew:
		m.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		m.conns.Dec()
	}
}
