package amqplink

import (
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
)

// Action is what becomes of a delivery once its handler is done with it.
type Action uint8

// The actions, and the AMQP method each one is settled with.
const (
	// Ack: the work is done (its result durably published, or nothing to
	// publish); the message leaves the queue. basic.ack.
	Ack Action = iota
	// Requeue: the work could not be finished now (its result was not
	// confirmed, a broker it needs went away); the message goes back to
	// the queue for any consumer. RabbitMQ counts the delivery, so a
	// message that keeps failing reaches the queue's delivery limit and is
	// dead-lettered. basic.nack with requeue.
	Requeue
	// Reject: the message can never be handled (it is not a valid command
	// or result); RabbitMQ dead-letters it at once with reason "rejected".
	// basic.reject without requeue.
	Reject
	// HandBack: the consumer is shutting down with the work unfinished;
	// the message goes back to the queue for another consumer. Settled like
	// Requeue (RabbitMQ counts it the same way), but logged and counted
	// apart, since it says nothing bad about the message.
	HandBack
)

// String is the action's name in logs and metric labels.
func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Requeue:
		return "requeue"
	case Reject:
		return "reject"
	case HandBack:
		return "hand_back"
	}
	return "unknown"
}

// Verdict is a handler's decision about one delivery. The consumer settles
// the delivery from it, logs it, and counts it: handlers never settle
// deliveries themselves, so the ack policy of every role is a function from
// a delivery to a Verdict, testable without a broker.
type Verdict struct {
	Action Action
	Reason string // why, for Requeue, Reject and HandBack; logged, never sent anywhere
	Attrs  []any  // slog key/value pairs that identify the work (client_id, msg_id, ...)
}

// Done is the verdict for finished work.
func Done() Verdict { return Verdict{Action: Ack} }

// Retry is the verdict for work that could not be finished now.
func Retry(reason string, attrs ...any) Verdict {
	return Verdict{Action: Requeue, Reason: reason, Attrs: attrs}
}

// Poison is the verdict for a message that can never be handled.
func Poison(reason string, attrs ...any) Verdict {
	return Verdict{Action: Reject, Reason: reason, Attrs: attrs}
}

// GiveBack is the verdict for work left unfinished at shutdown.
func GiveBack(reason string, attrs ...any) Verdict {
	return Verdict{Action: HandBack, Reason: reason, Attrs: attrs}
}

// settle applies v to d. This, ConsumeBatches' settling of a whole batch
// (batch.go), and Scan's removal of the messages it takes,
// are the only places in cafe that settle a delivery.
func settle(d *amqp.Delivery, v Verdict) error {
	switch v.Action {
	case Ack:
		return d.Ack(false)
	case Reject:
		return d.Reject(false)
	default: // Requeue, HandBack
		return d.Nack(false, true)
	}
}

// logVerdict logs v at a level that matches what it says about the
// message: a rejected message is a problem someone should look at; work
// requeued or handed back is routine under faults and shutdowns.
func logVerdict(log *slog.Logger, queue string, d *amqp.Delivery, v Verdict) {
	switch v.Action {
	case Ack:
		return
	case Reject:
		log.Warn("message rejected to the dead-letter queue", append([]any{"queue", queue, "message_id", contracts.Clip(d.MessageId), "reason", v.Reason}, v.Attrs...)...)
	default:
		log.Info("message back to the queue", append([]any{"queue", queue, "verdict", v.Action.String(), "message_id", contracts.Clip(d.MessageId), "reason", v.Reason}, v.Attrs...)...)
	}
}
