package amqplink

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Death is the most recent entry of RabbitMQ's x-death header: where a
// dead-lettered message was published, the queue it died in, and why
// ("rejected", "delivery_limit", "expired", "maxlen").
type Death struct {
	Queue      string
	Exchange   string
	RoutingKey string
	Reason     string
	Count      int64 // times it died in this queue for this reason
	Time       time.Time
}

// FirstDeath reads the first (most recent) x-death entry of headers.
func FirstDeath(headers amqp.Table) (Death, bool) {
	deaths, _ := headers["x-death"].([]any)
	if len(deaths) == 0 {
		return Death{}, false
	}
	x, ok := deaths[0].(amqp.Table)
	if !ok {
		return Death{}, false
	}
	var d Death
	d.Queue, _ = x["queue"].(string)
	d.Exchange, _ = x["exchange"].(string)
	d.Reason, _ = x["reason"].(string)
	d.Count, _ = x["count"].(int64)
	d.Time, _ = x["time"].(time.Time)
	if keys, ok := x["routing-keys"].([]any); ok && len(keys) > 0 {
		d.RoutingKey, _ = keys[0].(string)
	}
	return d, true
}
