package ledger

import (
	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts"
	"cafe/contracts/ops"
)

type metrics struct {
	events *prometheus.CounterVec // by kind, or skipped / invalid
	// The series of events, resolved once: WithLabelValues hashes its
	// label and looks the series up on every call, once per event before.
	kinds            map[contracts.EventKind]prometheus.Counter
	skipped, invalid prometheus.Counter
	batch            prometheus.Histogram
	writeTime        prometheus.Histogram
	lag              prometheus.Histogram
	writeFailures    prometheus.Counter
	deleted          prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: ops.CounterVec("cafe_ledger_events_total",
			"Events written, by kind (accepted, sent, done, dead, delivered, refused), or skipped (nothing to record) and invalid (dropped).", "kind"),
		batch:         ops.Histogram("cafe_ledger_batch_events", "Events per committed batch.", prometheus.ExponentialBuckets(1, 4, 8)),
		writeTime:     ops.Histogram("cafe_ledger_write_seconds", "Time to write and commit one batch.", ops.LatencyBuckets),
		lag:           ops.Histogram("cafe_ledger_lag_seconds", "Time from an event happening to its being committed to PostgreSQL (the ledger's lag).", ops.LatencyBuckets),
		writeFailures: ops.Counter("cafe_ledger_write_failures_total", "Batch writes PostgreSQL refused, or did not commit within the write timeout (each is tried again)."),
		deleted:       ops.Counter("cafe_ledger_deleted_rows_total", "Commands removed past retention (one row each, its history in it)."),
	}
	if err := ops.Register(reg, m.events, m.batch, m.writeTime, m.lag, m.writeFailures, m.deleted); err != nil {
		return nil, err
	}
	m.kinds = map[contracts.EventKind]prometheus.Counter{}
	for _, k := range recordedKinds {
		m.kinds[k] = m.events.WithLabelValues(string(k))
	}
	m.skipped, m.invalid = m.events.WithLabelValues("skipped"), m.events.WithLabelValues("invalid")
	return m, nil
}

// recordedKinds are the kinds of event decode makes.
var recordedKinds = []contracts.EventKind{contracts.EventAccepted, contracts.EventSent, contracts.EventDone,
	contracts.EventDead, contracts.EventDelivered, contracts.EventRefused}

// written is the counter of events of kind k written.
func (m *metrics) written(k contracts.EventKind) prometheus.Counter {
	if c, ok := m.kinds[k]; ok {
		return c
	}
	return m.events.WithLabelValues(string(k)) // not one of recordedKinds: decode makes none
}
