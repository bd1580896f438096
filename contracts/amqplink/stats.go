package amqplink

import (
	"context"
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
