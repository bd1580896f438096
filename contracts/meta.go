package contracts

import (
	"errors"
	"fmt"
	"time"
)

// AMQP headers. The message id property of a command is its CommandID (the
// repeat key); a result carries the same message id. Times are int64 Unix
// nanoseconds.
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

// Content type of every body the pipeline publishes.
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
// message-id property, not here).
func (m CommandMeta) Headers() map[string]any {
	h := map[string]any{
		HeaderClientID:   m.ClientID,
		HeaderDeviceID:   m.DeviceID,
		HeaderDeadline:   m.Deadline.UnixNano(),
		HeaderAcceptedAt: m.AcceptedAt.UnixNano(),
	}
	if m.MsgID != "" {
		h[HeaderMsgID] = m.MsgID
	}
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
	m.Notices = h[HeaderEvents] == EventsStatus
	if len(errs) > 0 {
		return m, fmt.Errorf("%w: %w", ErrBadMeta, errors.Join(errs...))
	}
	return m, nil
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

// Headers returns the AMQP headers of a result.
func (m ResultMeta) Headers() map[string]any {
	return map[string]any{
		HeaderClientID:   m.ClientID,
		HeaderDeviceID:   m.DeviceID,
		HeaderMsgID:      m.MsgID,
		HeaderAcceptedAt: m.AcceptedAt.UnixNano(),
		HeaderOutcome:    string(m.Outcome),
	}
}

// ResultHeaders are the headers of the result of a command whose headers,
// already checked by ParseCommandMeta, are cmd: those of ResultMeta.Headers,
// holding the command's own values. Reusing the values the command's
// headers already hold, instead of boxing each string and time into an
// interface again, saves five allocations per result on the barista's
// per-command path. Only the listed headers are copied: whatever else the
// command carried (x-delivery-count, x-death) does not follow it.
func ResultHeaders(cmd map[string]any, o Outcome) map[string]any {
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
	var errs []error
	m.ClientID, errs = stringHeader(h, HeaderClientID, ValidClientID, errs)
	m.DeviceID, _ = h[HeaderDeviceID].(string)
	m.MsgID, _ = h[HeaderMsgID].(string)
	if o, ok := h[HeaderOutcome].(string); ok && len(o) <= 32 {
		m.Outcome = Outcome(o)
	}
	if _, ok := h[HeaderAcceptedAt]; ok {
		m.AcceptedAt, _ = timeHeader(h, HeaderAcceptedAt, nil)
	}
	if len(errs) > 0 {
		return m, fmt.Errorf("%w: %w", ErrBadMeta, errors.Join(errs...))
	}
	return m, nil
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
