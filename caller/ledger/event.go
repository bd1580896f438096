package ledger

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/records"
)

// errSkip is a message of the events queue that records nothing (a dead
// result's copy for a command that is not the app's, a dead letter nobody
// waits for): acked, not written.
var errSkip = errors.New("nothing to record")

// decode reads one message of the events queue as the events it stands
// for, by the exchange it came through (see contracts.Topology): one, or
// a batch of explicit events, appended to into (the batch in hand, so a
// delivery costs no slice of its own). On an error into is returned as it
// was given, or longer (the caller cuts it back).
func (l *Ledger) decode(d *amqp.Delivery, into []records.Event) ([]records.Event, error) {
	if !contracts.ValidKey(d.MessageId) {
		return into, fmt.Errorf("message id %q is not a command id", contracts.Clip(d.MessageId))
	}
	refusal := d.Exchange == l.exchanges.commands && d.RoutingKey == contracts.RoutingKeyRefused
	if refusal {
		// A refusal makes a command final and frees its id: only one who
		// may publish commands may refuse them.
		if err := identity.CheckPublisher(d.UserId, l.cfg.CommandPublishers, identity.SettingCommandPublishers); err != nil {
			return into, fmt.Errorf("a refusal %w", err)
		}
	}
	if (refusal || d.Exchange == l.exchanges.events) && d.Headers[contracts.HeaderEvent] == contracts.EventBatch {
		return decodeBatch(d, kindsOf(refusal), into)
	}
	ev, err := l.decodeOne(d)
	if err != nil {
		return into, err
	}
	return append(into, ev), nil
}

func (l *Ledger) decodeOne(d *amqp.Delivery) (records.Event, error) {
	switch d.Exchange {
	case l.exchanges.commands:
		if d.RoutingKey == contracts.RoutingKeyRefused {
			return explicit(d, refusedKinds)
		}
		return accepted(d)
	case l.exchanges.results:
		if _, notice := d.Headers[contracts.HeaderNotice]; notice {
			return records.Event{}, errSkip // a status notice: the events say it
		}
		return done(d)
	case l.exchanges.dead:
		return l.dead(d)
	case l.exchanges.events:
		return explicit(d, explicitKinds)
	}
	return records.Event{}, fmt.Errorf("came through exchange %q, which the ledger does not read", contracts.Clip(d.Exchange))
}

func accepted(d *amqp.Delivery) (records.Event, error) {
	m, err := contracts.ParseCommandMeta(d.MessageId, d.Headers)
	if err != nil {
		return records.Event{}, err
	}
	return records.Event{ID: "accepted:" + m.CommandID, Kind: contracts.EventAccepted, CommandID: m.CommandID,
		ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID, At: m.AcceptedAt, Accepted: m.AcceptedAt}, nil
}

// done is a result: the first one written for a command is its result.
func done(d *amqp.Delivery) (records.Event, error) {
	m, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return records.Event{}, err
	}
	if len(d.Body) > contracts.MaxResultBytes {
		return records.Event{}, fmt.Errorf("result of %d bytes, over the limit", len(d.Body))
	}
	return records.Event{ID: "done:" + m.CommandID, Kind: contracts.EventDone, CommandID: m.CommandID,
		ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID, At: at(d), Outcome: m.Outcome, Result: d.Body}, nil
}

// dead is a dead letter: a command's is recorded with the notice the
// caller delivers for it as its result; a dead result only in the history.
func (l *Ledger) dead(d *amqp.Delivery) (records.Event, error) {
	death, ok := amqplink.FirstDeath(d.Headers)
	if !ok {
		return records.Event{}, errors.New("a dead letter without x-death")
	}
	meta, body, err := caller.DeadLetterNotice(l.top, l.cfg.CommandPublishers, d)
	if err != nil {
		if meta, err = contracts.ParseResultMeta(d.MessageId, d.Headers); err != nil {
			return records.Event{}, errSkip
		}
		body = nil
	}
	return records.Event{ID: "dead:" + death.Queue + ":" + d.MessageId, Kind: contracts.EventDead, CommandID: d.MessageId,
		ClientID: meta.ClientID, DeviceID: meta.DeviceID, MsgID: meta.MsgID, At: at(d), Outcome: contracts.OutcomeDeadLetter, Result: body}, nil
}

// The explicit events each route may carry: the events exchange the
// barista's and the caller's, the commands exchange's "refused" key the
// cashier's refusals.
var (
	explicitKinds = []contracts.EventKind{contracts.EventSent, contracts.EventDelivered}
	refusedKinds  = []contracts.EventKind{contracts.EventRefused}
)

func kindsOf(refusal bool) []contracts.EventKind {
	if refusal {
		return refusedKinds
	}
	return explicitKinds
}

func explicit(d *amqp.Delivery, kinds []contracts.EventKind) (records.Event, error) {
	kind, _ := d.Headers[contracts.HeaderEvent].(string)
	id, _ := d.Headers[contracts.HeaderEventID].(string)
	if err := checkExplicit(kind, id, kinds); err != nil {
		return records.Event{}, err
	}
	m, err := contracts.ParseResultMeta(d.MessageId, d.Headers)
	if err != nil {
		return records.Event{}, err
	}
	return records.Event{ID: kind + ":" + id, Kind: contracts.EventKind(kind), CommandID: m.CommandID,
		ClientID: m.ClientID, DeviceID: m.DeviceID, MsgID: m.MsgID, At: at(d)}, nil
}

func checkExplicit(kind, id string, kinds []contracts.EventKind) error {
	if !slices.Contains(kinds, contracts.EventKind(kind)) {
		return fmt.Errorf("header %s %q is not an event kind of this route", contracts.HeaderEvent, contracts.Clip(kind))
	}
	if !contracts.ValidKey(id) {
		return fmt.Errorf("header %s is not a valid event id", contracts.HeaderEventID)
	}
	return nil
}

// decodeBatch is a batch of explicit events (contracts.EventBatch), each checked
// as a single event's headers are: one bad event refuses the batch.
func decodeBatch(d *amqp.Delivery, kinds []contracts.EventKind, into []records.Event) ([]records.Event, error) {
	evs, err := contracts.ParseEventBatch(d.Body)
	if err != nil {
		return into, err
	}
	// The events' ids ("kind:id") are cut from one string built for the
	// whole batch: one allocation instead of one per event.
	n := 0
	for _, e := range evs {
		n += len(e.Kind) + 1 + len(e.ID)
	}
	var ids strings.Builder
	ids.Grow(n)
	for _, e := range evs {
		ids.WriteString(string(e.Kind))
		ids.WriteByte(':')
		ids.WriteString(e.ID)
	}
	all, end := ids.String(), 0
	now := time.Now()
	for i, e := range evs {
		if err := checkExplicit(string(e.Kind), e.ID, kinds); err != nil {
			return into, fmt.Errorf("event %d of the batch: %w", i+1, err)
		}
		if !contracts.ValidKey(e.CommandID) {
			return into, fmt.Errorf("event %d of the batch: command id %q is not a command id", i+1, contracts.Clip(e.CommandID))
		}
		// What contracts.ParseResultMeta checks of a single event's
		// headers, without building them: the client id.
		if !contracts.ValidClientID(e.ClientID) {
			return into, fmt.Errorf("event %d of the batch: %w: header %s is not valid", i+1, contracts.ErrBadMeta, contracts.HeaderClientID)
		}
		when := now
		if e.At > 0 {
			when = time.Unix(0, e.At)
		}
		start := end
		end += len(e.Kind) + 1 + len(e.ID)
		into = append(into, records.Event{ID: all[start:end], Kind: e.Kind, CommandID: e.CommandID,
			ClientID: e.ClientID, DeviceID: e.DeviceID, MsgID: e.MsgID, At: when})
	}
	return into, nil
}

// at is when the event happened: an explicit event says it; for a copy,
// when the ledger read it (AMQP timestamps have whole seconds only).
func at(d *amqp.Delivery) time.Time {
	if t := contracts.EventTime(d.Headers); !t.IsZero() {
		return t
	}
	return time.Now()
}
