package amqplink

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
)

// ErrServerUnsupported is returned when the broker lacks something cafe needs.
var ErrServerUnsupported = errors.New("rabbitmq server unsupported")

// CheckServer checks what the broker announced at connection time: RabbitMQ
// 3.10 or newer (quorum queues with x-delivery-limit and at-least-once
// dead-lettering), and the publisher-confirm, nack and connection.blocked
// capabilities that cafe's guarantees rest on.
func CheckServer(props amqp.Table) error {
	var missing []string
	version, _ := props["version"].(string)
	if product, _ := props["product"].(string); product != "" && product != "RabbitMQ" {
		missing = append(missing, fmt.Sprintf("a RabbitMQ broker (this is %q)", product))
	}
	if !atLeast(version, 3, 10) {
		missing = append(missing, fmt.Sprintf("RabbitMQ 3.10 or newer for quorum queues with x-delivery-limit and at-least-once dead-lettering (this is %q)", version))
	}
	caps, _ := props["capabilities"].(amqp.Table)
	for _, c := range []string{"publisher_confirms", "basic.nack", "connection.blocked", "consumer_cancel_notify"} {
		if on, _ := caps[c].(bool); !on {
			missing = append(missing, "the "+c+" capability")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: cafe needs %s", ErrServerUnsupported, strings.Join(missing, "; "))
	}
	return nil
}

func atLeast(version string, major, minor int) bool {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// Declare declares every exchange, queue and binding of t. It is idempotent;
// it fails when a queue exists with other arguments, with an error that says
// what to do about it.
func Declare(ch *amqp.Channel, t contracts.Topology) error {
	exchanges := []struct{ name, kind string }{
		{t.CommandsExchange(), amqp.ExchangeDirect},
		{t.ResultsExchange(), amqp.ExchangeDirect},
		{t.DeadExchange(), amqp.ExchangeFanout},
	}
	for _, e := range exchanges {
		if err := ch.ExchangeDeclare(e.name, e.kind, true, false, false, false, nil); err != nil {
			return explain("exchange", e.name, err)
		}
	}
	queues := []struct {
		name, exchange, key string
		args                map[string]any
	}{
		{t.CommandsQueue(), t.CommandsExchange(), contracts.RoutingKeyCommand, t.CommandsQueueArgs()},
		{t.ResultsQueue(), t.ResultsExchange(), contracts.RoutingKeyResult, t.ResultsQueueArgs()},
		{t.DeadQueue(), t.DeadExchange(), "", t.DeadQueueArgs()},
		{t.DeadNotifyQueue(), t.DeadExchange(), "", t.DeadNotifyQueueArgs()},
	}
	for _, q := range queues {
		if _, err := ch.QueueDeclare(q.name, true, false, false, false, amqp.Table(q.args)); err != nil {
			return explain("queue", q.name, err)
		}
		if err := ch.QueueBind(q.name, q.key, q.exchange, false, nil); err != nil {
			return explain("binding of queue", q.name, err)
		}
	}
	return nil
}

func explain(kind, name string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Code == amqp.PreconditionFailed:
			return fmt.Errorf("%s %s exists with other arguments than this configuration (%s): "+
				"keep the old settings, delete it (rabbitmqctl delete_queue %s) once it is drained, or use another CAFE_AMQP_PREFIX: %w",
				kind, name, ae.Reason, name, err)
		case strings.Contains(ae.Reason, "feature_flag") || strings.Contains(ae.Reason, "quorum_queue"):
			return fmt.Errorf("%s %s: the broker refused a quorum queue (%s); enable it with "+
				"`rabbitmqctl enable_feature_flag quorum_queue`: %w", kind, name, ae.Reason, err)
		case ae.Code == amqp.AccessRefused:
			return fmt.Errorf("%s %s: the AMQP user may not declare it (%s); grant configure permission on the vhost: %w",
				kind, name, ae.Reason, err)
		}
	}
	return fmt.Errorf("declare %s %s: %w", kind, name, err)
}
