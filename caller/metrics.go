package caller

import (
	"github.com/prometheus/client_golang/prometheus"

	"cafe/contracts/ops"
)

const (
	outcomeDelivered       = "delivered"
	outcomeNoticeDelivered = "notice_delivered"
	outcomeNoticeSkipped   = "notice_skipped"
	outcomeStatusNotice    = "status_notice"
)

type metrics struct {
	results  *prometheus.CounterVec
	publish  prometheus.Histogram
	endToEnd prometheus.Histogram
	unsent   prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		results: ops.CounterVec("cafe_caller_results_total",
			"Results by outcome: delivered (acknowledged by the MQTT broker), notice_delivered (an app told its command was dead-lettered), "+
				`notice_skipped (a dead letter nobody waits for), status_notice (a queued, sent or done notice, Cafe-Events: status). Poison, requeued and handed-back results are in cafe_deliveries_total{consumer="caller"}.`, "outcome"),
		publish:  ops.Histogram("cafe_caller_publish_seconds", "Time from publishing a result to the MQTT broker's PUBACK.", ops.LatencyBuckets),
		endToEnd: ops.Histogram("cafe_caller_end_to_end_seconds", "Time from the cashier receiving a command to its result being acknowledged by the MQTT broker.", ops.LatencyBuckets),
		unsent:   ops.Counter("cafe_caller_events_unsent_total", `"delivered" events for the ledger that could not be posted (no channel to RabbitMQ).`),
	}
	if err := ops.Register(reg, m.results, m.publish, m.endToEnd, m.unsent); err != nil {
		return nil, err
	}
	for _, o := range []string{outcomeDelivered, outcomeNoticeDelivered, outcomeNoticeSkipped, outcomeStatusNotice} {
		m.results.WithLabelValues(o)
	}
	return m, nil
}
