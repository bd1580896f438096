package contracts

import (
	"errors"
	"fmt"
	"time"
)

// AMQP headers. The message id property of a command is its CommandID (the
// repeat key); a result carries the same message id. A command's client,
// device, msg id and times travel packed in HeaderMeta (metapack.go); the
// five headers below of one field each are its older form, still read
// (queued messages and dead letters of earlier versions) but no longer
// written. Times are int64 Unix nanoseconds.
const (
	HeaderClientID   = "cafe-client-id"   // string: the app that sent the command
	HeaderDeviceID   = "cafe-device-id"   // string: the device it is for
	HeaderMsgID      = "cafe-msg-id"      // string: the app's raw id token (7 or "a-7"); absent for one-way commands
	HeaderDeadline   = "cafe-deadline"    // int64: the command must be answered by then
	HeaderAcceptedAt = "cafe-accepted-at" // int64: when the cashier received it
	HeaderOutcome    = "cafe-outcome"     // string, results only: how the command ended (Outcome)
	// int64: times the message was replayed from the dead letters (absent:
	// never); `cafe dead replay` sets it to one more than the letter's.
	HeaderReplayCount = "cafe-replay-count"
	HeaderEvents      = "cafe-events" // string "status": the app asked for status notices (Cafe-Events); commands and their results
)

// ContentTypeJSON is the type of every body the pipeline publishes. The
// commands and results themselves do not carry it as a content-type
// property, nor a timestamp property (HeaderMeta has the accepted-at time,
// to the nanosecond): each property set is encoded by the client (the
// AMQP client allocates for each) and decoded by RabbitMQ on every
// publish, for nobody to read; 25 bytes a message.
const ContentTypeJSON = "application/json"

// CommandMeta is what travels with a command besides the app's bytes.
type CommandMeta struct {
	CommandID  string    // AMQP message id; the repeat key
	ClientID   string    // HeaderClientID
	DeviceID   string    // HeaderDeviceID
	MsgID      string    // HeaderMsgID; "" for a one-way command
	Deadline   time.Time // HeaderDeadline
	AcceptedAt time.Time // HeaderAcceptedAt
	Notices    bool      // HeaderEvents: the app asked for status notices
}

// Headers returns the AMQP headers for m (the command id goes in the
// message-id property, not here): HeaderMeta, and HeaderEvents when the
// app asked for notices.
func (m CommandMeta) Headers() map[string]any {
	h := map[string]any{HeaderMeta: packMeta(m.ClientID, m.DeviceID, m.AcceptedAt, m.Deadline, m.MsgID)}
	if m.Notices {
		h[HeaderEvents] = EventsStatus
	}
	return h
}

// ErrBadMeta marks a message whose properties or headers break this contract.
var ErrBadMeta = errors.New("message does not carry valid cafe headers")

// ParseCommandMeta reads a command's message id and headers.
func ParseCommandMeta(messageID string, h map[string]any) (CommandMeta, error) {
	var m CommandMeta
	var errs []error
	m.CommandID = messageID
	if !ValidKey(messageID) {
		errs = append(errs, fmt.Errorf("message id %q is not a valid command id", Clip(messageID)))
	}
	m.Notices = h[HeaderEvents] == EventsStatus
	if v, ok := h[HeaderMeta]; ok {
		p, err := unpackMeta(v)
		if err != nil {
			errs = append(errs, err)
		} else {
			errs = append(errs, p.commandMeta(&m)...)
		}
		return m, badMeta(errs)
	}
	m.ClientID, errs = stringHeader(h, HeaderClientID, ValidClientID, errs)
	m.DeviceID, errs = stringHeader(h, HeaderDeviceID, ValidDeviceID, errs)
	if v, ok := h[HeaderMsgID]; ok {
		s, isString := v.(string)
		if !isString || s == "" || len(s) > MaxStringIDLen+2 {
			errs = append(errs, fmt.Errorf("header %s is not a JSON-RPC id token", HeaderMsgID))
		}
		m.MsgID = s
	}
	m.Deadline, errs = timeHeader(h, HeaderDeadline, errs)
	m.AcceptedAt, errs = timeHeader(h, HeaderAcceptedAt, errs)
	return m, badMeta(errs)
}

// badMeta wraps errs in ErrBadMeta; nil for none.
func badMeta(errs []error) error {
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrBadMeta, errors.Join(errs...))
	}
	return nil
}

// ResultMeta is what travels with a result.
type ResultMeta struct {
	CommandID  string
	ClientID   string
	DeviceID   string
	MsgID      string
	AcceptedAt time.Time
	Outcome    Outcome
}

// Headers returns the AMQP headers of a result: HeaderMeta (with no
// deadline) and HeaderOutcome.
func (m ResultMeta) Headers() map[string]any {
	return map[string]any{
		HeaderMeta:    packMeta(m.ClientID, m.DeviceID, m.AcceptedAt, time.Time{}, m.MsgID),
		HeaderOutcome: boxedOutcome(m.Outcome),
	}
}

// ResultHeaders are the headers of the result of a command whose headers,
// already checked by ParseCommandMeta, are cmd: the command's HeaderMeta
// value itself (the same boxed string: no allocation; its deadline rides
// along, unread) and HeaderOutcome. Only these are copied: whatever else
// the command carried (x-delivery-count, x-death) does not follow it. A
// command in the older form gets a result in the older form.
func ResultHeaders(cmd map[string]any, o Outcome) map[string]any {
	if v, ok := cmd[HeaderMeta]; ok {
		return map[string]any{HeaderMeta: v, HeaderOutcome: boxedOutcome(o)}
	}
	msgID, ok := cmd[HeaderMsgID]
	if !ok {
		msgID = ""
	}
	return map[string]any{
		HeaderClientID:   cmd[HeaderClientID],
		HeaderDeviceID:   cmd[HeaderDeviceID],
		HeaderMsgID:      msgID,
		HeaderAcceptedAt: cmd[HeaderAcceptedAt],
		HeaderOutcome:    boxedOutcome(o),
	}
}

// boxedOutcomes holds each outcome as a header value, boxed once.
var boxedOutcomes = func() map[Outcome]any {
	m := map[Outcome]any{}
	for _, o := range []Outcome{OutcomeReply, OutcomeOffline, OutcomeTimeout, OutcomeExpired, OutcomeUnreachable, OutcomeBadReply, OutcomeDeadLetter, OutcomeSent} {
		m[o] = string(o)
	}
	return m
}()

func boxedOutcome(o Outcome) any {
	if v, ok := boxedOutcomes[o]; ok {
		return v
	}
	return string(o)
}

// ParseResultMeta reads a result's message id and headers. Only the client
// id is required to deliver a result; the rest is informational and
// tolerated when missing.
func ParseResultMeta(messageID string, h map[string]any) (ResultMeta, error) {
	m := ResultMeta{CommandID: messageID}
	if o, ok := h[HeaderOutcome].(string); ok && len(o) <= 32 {
		m.Outcome = Outcome(o)
	}
	if v, ok := h[HeaderMeta]; ok {
		p, err := unpackMeta(v)
		if err == nil && !ValidClientID(p.clientID) {
			err = fmt.Errorf("header %s: the client id is not valid", HeaderMeta)
		}
		if err != nil {
			return m, badMeta([]error{err})
		}
		m.ClientID, m.DeviceID, m.MsgID, m.AcceptedAt = p.clientID, p.deviceID, p.msgID, timeOf(p.accepted)
		return m, nil
	}
	var errs []error
	m.ClientID, errs = stringHeader(h, HeaderClientID, ValidClientID, errs)
	m.DeviceID, _ = h[HeaderDeviceID].(string)
	m.MsgID, _ = h[HeaderMsgID].(string)
	if _, ok := h[HeaderAcceptedAt]; ok {
		m.AcceptedAt, _ = timeHeader(h, HeaderAcceptedAt, nil)
	}
	return m, badMeta(errs)
}

func stringHeader(h map[string]any, name string, valid func(string) bool, errs []error) (string, []error) {
	v, ok := h[name]
	if !ok {
		return "", append(errs, fmt.Errorf("header %s is missing", name))
	}
	s, ok := v.(string)
	if !ok || !valid(s) {
		return "", append(errs, fmt.Errorf("header %s is not valid", name))
	}
	return s, errs
}

func timeHeader(h map[string]any, name string, errs []error) (time.Time, []error) {
	var n int64
	switch v := h[name].(type) {
	case int64:
		n = v
	case int32:
		n = int64(v)
	case int:
		n = int64(v)
	case nil:
		return time.Time{}, append(errs, fmt.Errorf("header %s is missing", name))
	default:
		return time.Time{}, append(errs, fmt.Errorf("header %s is not an integer (Unix nanoseconds)", name))
	}
	if n <= 0 {
		return time.Time{}, append(errs, fmt.Errorf("header %s is not a positive time", name))
	}
	return time.Unix(0, n), errs
}
