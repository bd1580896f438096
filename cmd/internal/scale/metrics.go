package scale

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the supervisor's gauges (label role: barista or caller).
type metrics struct {
	desired, running, backlog, drain, oldest prometheus.Gauge
	decisions                                *prometheus.CounterVec // by direction: up, down, replace
}

func newMetrics(reg prometheus.Registerer, role string) (*metrics, error) {
	labels := prometheus.Labels{"role": role}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	m := &metrics{
		desired: gauge("cafe_scale_desired", "Workers the supervisor wants running."),
		running: gauge("cafe_scale_running", "Workers running (not counting those stopping)."),
		backlog: gauge("cafe_scale_backlog", "Messages ready or unacknowledged in the queue the tier is sized by."),
		drain:   gauge("cafe_scale_drain_seconds", "Estimated time for the backlog to drain at the current rates (+Inf: not draining)."),
		oldest:  gauge("cafe_scale_oldest_seconds", "Estimated age of the oldest waiting message (ready / rate in; 0: unknown)."),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cafe_scale_decisions_total",
			Help: "Changes of the worker count, by direction: up, down, replace (a worker died).", ConstLabels: labels}, []string{"direction"}),
	}
	for _, d := range []string{"up", "down", "replace"} {
		m.decisions.WithLabelValues(d)
	}
	for _, c := range []prometheus.Collector{m.desired, m.running, m.backlog, m.drain, m.oldest, m.decisions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one observation and the decision made on it.
func (m *metrics) observe(o Observation, d Decision, running int) {
	m.desired.Set(float64(d.Desired))
	m.backlog.Set(float64(o.Backlog()))
	drain := o.DrainTime().Seconds()
	if o.DrainTime() == math.MaxInt64 {
		drain = math.Inf(1)
	}
	m.drain.Set(drain)
	m.oldest.Set(o.OldestAge.Seconds())
	switch {
	case d.Desired > running:
		m.decisions.WithLabelValues("up").Inc()
	case d.Desired < running:
		m.decisions.WithLabelValues("down").Inc()
	}
}
