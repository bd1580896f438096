package caller

import "github.com/prometheus/client_golang/prometheus"

const (
	outcomeDelivered       = "delivered"
	outcomeNoticeDelivered = "notice_delivered"
	outcomeNoticeSkipped   = "notice_skipped"
)

type metrics struct {
	results  *prometheus.CounterVec
	publish  prometheus.Histogram
	endToEnd prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cafe_caller_results_total",
			Help: "Results by outcome: delivered (acknowledged by the MQTT broker), notice_delivered (an app told its command was dead-lettered), notice_skipped (a dead letter nobody waits for). Poison, requeued and handed-back results are in cafe_deliveries_total{consumer=\"caller\"}.",
		}, []string{"outcome"}),
		publish: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cafe_caller_publish_seconds",
			Help:    "Time from publishing a result to the MQTT broker's PUBACK.",
			Buckets: buckets,
		}),
		endToEnd: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cafe_caller_end_to_end_seconds",
			Help:    "Time from the cashier receiving a command to its result being acknowledged by the MQTT broker.",
			Buckets: buckets,
		}),
	}
	for _, c := range []prometheus.Collector{m.results, m.publish, m.endToEnd} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []string{outcomeDelivered, outcomeNoticeDelivered, outcomeNoticeSkipped} {
		m.results.WithLabelValues(o)
	}
	return m, nil
}
