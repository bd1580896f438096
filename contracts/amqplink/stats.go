package amqplink

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// QueueStats is a queue's depth as RabbitMQ reports it.
type QueueStats struct {
	Messages  int // ready, not yet delivered to a consumer
	Consumers int
}

// Inspect asks RabbitMQ for a queue's depth (a passive declare on a
// short-lived channel).
func (l *Link) Inspect(ctx context.Context, queue string) (QueueStats, error) {
	conn, err := l.Conn(ctx)
	if err != nil {
		return QueueStats{}, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return QueueStats{}, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return QueueStats{}, fmt.Errorf("inspect queue %s: %w", queue, err)
	}
	return QueueStats{Messages: q.Messages, Consumers: q.Consumers}, nil
}

// queueCollector reports the depth of the pipeline's queues at scrape time,
// so operators can scale baristas (and callers) by queue depth.
type queueCollector struct {
	link      *Link
	messages  *prometheus.Desc
	consumers *prometheus.Desc
}

// QueueCollector returns a Prometheus collector of the depth and consumer
// count of the commands, results and dead-letter queues (label "queue":
// commands, results, dead). A queue that cannot be inspected is left out
// of that scrape.
func (l *Link) QueueCollector() prometheus.Collector {
	return &queueCollector{
		link:      l,
		messages:  prometheus.NewDesc("cafe_queue_messages", "Messages ready in a cafe queue (commands, results, dead).", []string{"queue"}, nil),
		consumers: prometheus.NewDesc("cafe_queue_consumers", "Consumers of a cafe queue.", []string{"queue"}, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.messages
	ch <- c.consumers
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	top := c.link.Topology()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for label, queue := range map[string]string{"commands": top.CommandsQueue(), "results": top.ResultsQueue(), "dead": top.DeadQueue()} {
		s, err := c.link.Inspect(ctx, queue)
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.GaugeValue, float64(s.Messages), label)
		ch <- prometheus.MustNewConstMetric(c.consumers, prometheus.GaugeValue, float64(s.Consumers), label)
	}
}

// ConsumerMetrics counts what consumers did with their deliveries: one set
// per process, shared by all its consumers (labels: the consumer's Name, a
// bounded role name, never a queue prefix or instance).
type ConsumerMetrics struct {
	verdicts *prometheus.CounterVec // by consumer and verdict
	failures *prometheus.CounterVec // settles that failed, by consumer
}

// NewConsumerMetrics registers cafe_deliveries_total and
// cafe_settle_failures_total with reg, or reuses them if this process
// registered them already (cafe up runs several roles in one process).
func NewConsumerMetrics(reg prometheus.Registerer) (*ConsumerMetrics, error) {
	verdicts, err := registerOnce(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cafe_deliveries_total",
		Help: "Deliveries settled by cafe's consumers, by consumer (barista, caller, caller_notices) and verdict: ack (done), requeue (could not finish now), reject (poison, dead-lettered), hand_back (unfinished at shutdown).",
	}, []string{"consumer", "verdict"}))
	if err != nil {
		return nil, err
	}
	failures, err := registerOnce(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cafe_settle_failures_total",
		Help: "Acks, nacks and rejects that failed because the channel was gone (RabbitMQ requeued those deliveries itself), by consumer.",
	}, []string{"consumer"}))
	if err != nil {
		return nil, err
	}
	return &ConsumerMetrics{verdicts: verdicts, failures: failures}, nil
}

// Start makes the series of consumer name visible at 0 before anything
// happens, so dashboards and alerts see zeros rather than gaps.
func (m *ConsumerMetrics) Start(name string) {
	if m == nil {
		return
	}
	for _, a := range []Action{Ack, Requeue, Reject, HandBack} {
		m.verdicts.WithLabelValues(name, a.String())
	}
	m.failures.WithLabelValues(name)
}

func (m *ConsumerMetrics) observe(name string, v Verdict, settleErr error) {
	if m == nil {
		return
	}
	m.verdicts.WithLabelValues(name, v.Action.String()).Inc()
	if settleErr != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}

// observeBatch counts n deliveries settled with v by one multiple ack or
// nack (a failure is one failed settle, as for a held ack).
func (m *ConsumerMetrics) observeBatch(name string, v Verdict, n int, settleErr error) {
	if m == nil {
		return
	}
	m.verdicts.WithLabelValues(name, v.Action.String()).Add(float64(n))
	if settleErr != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}

// settleFailed counts a settle that failed apart from its verdict (a held
// ack sent later).
func (m *ConsumerMetrics) settleFailed(name string) {
	if m != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}

// registerOnce registers c, or returns the collector of the same
// description registered before.
func registerOnce[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if prev, ok := already.ExistingCollector.(C); ok {
				return prev, nil
			}
		}
		return c, err
	}
	return c, nil
}
