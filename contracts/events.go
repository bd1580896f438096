package contracts

import (
	"crypto/rand"
	"encoding/hex"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Events: what the ledger (package caller/ledger) records of each command.
// Most of them are copies RabbitMQ makes for free (see Topology): the
// command the cashier published (accepted), the result a barista published
// (done), the dead letter (dead). The facts no message carries are
// published by the role that knows them:
//
//	sent       a barista: the MQTT broker took the command for the device
//	delivered  a caller: the MQTT broker took the result for the app
//	refused    the cashier: RabbitMQ refused the command (nacked or
//	           returned it), so the cashier answered 503
//
// sent and delivered go to the events exchange. refused goes to the
// commands exchange with routing key RoutingKeyRefused, which only the
// events queue is bound with: RabbitMQ copies a command into the events
// queue even when the commands queue refuses it (a full queue nacks, the
// events queue drops its oldest and takes it), so without the refusal the
// ledger would record a command that never runs as queued, pending for
// ever, and the app's retry with the same id would get 409. The cashier
// may write to the commands exchange but not to the events exchange; the
// ledger takes a refusal only from a command publisher. A refusal does
// not undo a later step: on a cluster a nack can come from the events
// queue while the commands queue took the command, which then runs.
//
// An explicit event is an AMQP message with the command's id as its
// message id, the headers of CommandMeta that identify the command
// (HeaderClientID, HeaderDeviceID, HeaderMsgID), HeaderEvent naming its
// kind, HeaderEventID (unique per event, so a redelivered event is recorded
// once) and HeaderEventAt, its time. It has no body. Baristas and callers
// post them gathered into batches (EventBatcher, EventBatch), fire and
// forget (amqplink.Publisher.Post): waiting for a confirm would put a
// quorum-queue commit on the command's critical path for a fact that is
// only history; a batch is lost only if the connection or the broker fails
// in the instant after it was sent (or the process dies while it waits),
// and never a result.
const (
	HeaderEvent   = "cafe-event"    // string: EventSent, EventDelivered or EventRefused
	HeaderEventID = "cafe-event-id" // string: unique per event
	HeaderEventAt = "cafe-at"       // int64 Unix nanoseconds: when it happened (AMQP timestamps have whole seconds); results carry it too
)

// EventKind names a step in a command's history.
type EventKind string

// The kinds of event, in the order a command goes through them.
const (
	EventAccepted  EventKind = "accepted"  // copy of the command (commands exchange)
	EventSent      EventKind = "sent"      // explicit, from a barista
	EventDone      EventKind = "done"      // copy of the result (results exchange)
	EventDead      EventKind = "dead"      // copy of the dead letter (dead-letter exchange)
	EventDelivered EventKind = "delivered" // explicit, from a caller
	// EventRefused is explicit, from the cashier (commands exchange,
	// RoutingKeyRefused): RabbitMQ did not take the command. It is the
	// end of a command that was never queued, out of the order above.
	EventRefused EventKind = "refused"
)

// Event returns the explicit event of kind for a command.
func Event(kind EventKind, commandID, clientID, deviceID, msgID string, at time.Time) amqp.Publishing {
	return NewEvent(kind, commandID, clientID, deviceID, msgID, at).Publishing()
}

// NewEvent is the explicit event of kind for a command, as a batch holds
// it (EventBatcher.Add), with a new event id.
func NewEvent(kind EventKind, commandID, clientID, deviceID, msgID string, at time.Time) BatchedEvent {
	return BatchedEvent{Kind: kind, ID: newEventID(), CommandID: commandID, ClientID: clientID, DeviceID: deviceID, MsgID: msgID, At: at.UnixNano()}
}

// Publishing is e as a message of its own (see the explicit events above).
func (e BatchedEvent) Publishing() amqp.Publishing {
	h := amqp.Table{
		HeaderEvent:    string(e.Kind),
		HeaderEventID:  e.ID,
		HeaderEventAt:  e.At,
		HeaderClientID: e.ClientID,
		HeaderDeviceID: e.DeviceID,
	}
	if e.MsgID != "" {
		h[HeaderMsgID] = e.MsgID
	}
	return amqp.Publishing{MessageId: e.CommandID, Headers: h}
}

// newEventID is 96 random bits: unique among the events a ledger keeps.
func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// EventTime is the time in h's HeaderEventAt, or the zero time.
func EventTime(h map[string]any) time.Time {
	t, errs := timeHeader(h, HeaderEventAt, nil)
	if len(errs) > 0 {
		return time.Time{}
	}
	return t
}

// Notice is the status notice status for the command of m, as the cashier
// and the barista publish it on the results exchange (see NoticeBody).
func Notice(m CommandMeta, status string, at time.Time) amqp.Publishing {
	h := ResultMeta{CommandID: m.CommandID, ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID, AcceptedAt: m.AcceptedAt}.Headers()
	h[HeaderNotice] = status
	h[HeaderEventAt] = at.UnixNano()
	delete(h, HeaderOutcome)
	return amqp.Publishing{MessageId: m.CommandID, Headers: h}
}
