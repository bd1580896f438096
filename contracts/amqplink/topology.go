package amqplink

import (
	"cmp"
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

// Declare declares every exchange, queue and binding of t (from its one
// list, t.Exchanges and t.Queues). It is idempotent; it fails when a queue
// exists with other arguments, with an error that says what to do about it.
func Declare(ch *amqp.Channel, t contracts.Topology) error {
	for _, e := range t.Exchanges() {
		if err := ch.ExchangeDeclare(e.Name, e.Kind, true, false, false, false, nil); err != nil {
			return explain("exchange", e.Name, err)
		}
	}
	for _, q := range t.Queues() {
		if _, err := ch.QueueDeclare(q.Name, true, false, false, false, amqp.Table(q.Args)); err != nil {
			return explain("queue", q.Name, err)
		}
		for _, b := range q.Bindings() {
			if err := ch.QueueBind(q.Name, b.Key, b.Exchange, false, nil); err != nil {
				return explain("binding of queue", q.Name, err)
			}
		}
	}
	return nil
}

// Ensure makes sure the topology t exists on conn: it declares it, or,
// passive, only checks that it is there (cafe's roles have no configure
// permission: cafe-admin declares, see deploy/README.md). A check fails with
// ErrTopologyMissing, saying what to do.
func Ensure(conn *amqp.Connection, t contracts.Topology, passive bool) error {
	if passive {
		return Check(conn, t)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	return Declare(ch, t)
}

// ErrTopologyMissing marks a topology that is not (all) there.
var ErrTopologyMissing = errors.New("cafe's queues and exchanges are not declared")

// Check checks, without declaring anything (a passive declare needs no
// permission), that every exchange and queue of t exists.
func Check(conn *amqp.Connection, t contracts.Topology) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	missing := func(kind, name string, err error) error {
		return fmt.Errorf("%w: %s %s (%v): this user may not declare it; declare the topology as cafe-admin (cafe up does; or run `cafe topology --amqp-prefix %s`)",
			ErrTopologyMissing, kind, name, err, t.Prefix)
	}
	for _, e := range t.Exchanges() {
		if err := ch.ExchangeDeclarePassive(e.Name, e.Kind, true, false, false, false, nil); err != nil {
			return missing("exchange", e.Name, err) // the channel is closed now
		}
	}
	for _, q := range t.Queues() {
		if _, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil); err != nil {
			return missing("queue", q.Name, err)
		}
	}
	return nil
}

// Delete removes every queue and exchange of t, messages included, for
// tests and the bench's private topologies. Each deletion gets a channel of
// its own (a failed one closes its channel); what does not exist is skipped.
// It returns the first error other than "not found".
func Delete(conn *amqp.Connection, t contracts.Topology) error {
	var first error
	do := func(f func(ch *amqp.Channel) error) {
		ch, err := conn.Channel()
		if err != nil {
			first = cmp.Or(first, err)
			return
		}
		defer ch.Close()
		var ae *amqp.Error
		if err := f(ch); err != nil && !(errors.As(err, &ae) && ae.Code == amqp.NotFound) {
			first = cmp.Or(first, err)
		}
	}
	for _, q := range t.Queues() {
		do(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q.Name, false, false, false); return err })
	}
	for _, e := range t.Exchanges() {
		do(func(ch *amqp.Channel) error { return ch.ExchangeDelete(e.Name, false, false) })
	}
	return first
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
