package contracts

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HeaderMeta carries a command's pipeline metadata in one header, packed
// as a string of five fields separated by single spaces:
//
//	{client id} {device id} {accepted at} {deadline} {msg id}
//
// times as decimal Unix nanoseconds (the deadline 0 when there is none),
// the msg id last, as the app's raw id token (it may hold spaces; empty for
// a one-way command). A result carries its command's HeaderMeta value
// unchanged, and HeaderOutcome beside it.
//
// Why one header instead of one per field: every header is a table entry
// that the AMQP client encodes and decodes (two to four allocations each),
// and that RabbitMQ decodes on every publish (it checks the user-id
// property, which means decoding the whole properties frame) and writes to
// the quorum queue's log as a term of its own; one string instead of five
// entries costs each of them a fraction, and the message is ~60 bytes
// shorter. Ids never hold a space (ids.go), so the split is unambiguous.
//
// Messages published before this header existed (one header per field:
// HeaderClientID and the rest) are still read by every parser here, so
// queued commands and dead letters from earlier versions keep working.
const HeaderMeta = "cafe"

// packMeta builds the value of HeaderMeta.
func packMeta(clientID, deviceID string, accepted, deadline time.Time, msgID string) string {
	var b strings.Builder
	b.Grow(len(clientID) + len(deviceID) + len(msgID) + 2*20 + 4)
	b.WriteString(clientID)
	b.WriteByte(' ')
	b.WriteString(deviceID)
	b.WriteByte(' ')
	var num [20]byte
	b.Write(strconv.AppendInt(num[:0], unixNanos(accepted), 10))
	b.WriteByte(' ')
	b.Write(strconv.AppendInt(num[:0], unixNanos(deadline), 10))
	b.WriteByte(' ')
	b.WriteString(msgID)
	return b.String()
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// packed is HeaderMeta's fields, as found in the string (not yet checked).
type packed struct {
	clientID, deviceID string
	accepted, deadline int64
	msgID              string
}

// unpackMeta splits a HeaderMeta value; the error says what is malformed.
func unpackMeta(v any) (packed, error) {
	s, ok := v.(string)
	if !ok {
		return packed{}, fmt.Errorf("header %s is not a string", HeaderMeta)
	}
	var p packed
	var acc, dl string
	var ok1, ok2, ok3, ok4 bool
	p.clientID, s, ok1 = strings.Cut(s, " ")
	p.deviceID, s, ok2 = strings.Cut(s, " ")
	acc, s, ok3 = strings.Cut(s, " ")
	dl, p.msgID, ok4 = strings.Cut(s, " ")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return packed{}, fmt.Errorf("header %s does not have its five fields", HeaderMeta)
	}
	var err1, err2 error
	p.accepted, err1 = strconv.ParseInt(acc, 10, 64)
	p.deadline, err2 = strconv.ParseInt(dl, 10, 64)
	if err1 != nil || err2 != nil || p.accepted < 0 || p.deadline < 0 {
		return packed{}, fmt.Errorf("header %s: its times are not Unix nanoseconds", HeaderMeta)
	}
	return p, nil
}

// commandMeta checks p as a command's metadata.
func (p packed) commandMeta(m *CommandMeta) []error {
	var errs []error
	m.ClientID, m.DeviceID, m.MsgID = p.clientID, p.deviceID, p.msgID
	if !ValidClientID(p.clientID) {
		errs = append(errs, fmt.Errorf("header %s: the client id is not valid", HeaderMeta))
	}
	if !ValidDeviceID(p.deviceID) {
		errs = append(errs, fmt.Errorf("header %s: the device id is not valid", HeaderMeta))
	}
	if len(p.msgID) > MaxStringIDLen+2 {
		errs = append(errs, fmt.Errorf("header %s: the msg id is not a JSON-RPC id token", HeaderMeta))
	}
	if p.accepted <= 0 || p.deadline <= 0 {
		errs = append(errs, fmt.Errorf("header %s: the accepted-at and deadline times must be positive", HeaderMeta))
	}
	m.AcceptedAt, m.Deadline = timeOf(p.accepted), timeOf(p.deadline)
	return errs
}

func timeOf(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ReadMeta reads what a message's headers say of its command, in either
// form (HeaderMeta, or the older one header per field) and without
// checking it: for tools that show messages (dead letters), which must
// show even a malformed one.
func ReadMeta(h map[string]any) CommandMeta {
	var m CommandMeta
	if v, ok := h[HeaderMeta]; ok {
		if p, err := unpackMeta(v); err == nil {
			m.ClientID, m.DeviceID, m.MsgID = p.clientID, p.deviceID, p.msgID
			m.AcceptedAt, m.Deadline = timeOf(p.accepted), timeOf(p.deadline)
		}
		return m
	}
	m.ClientID, _ = h[HeaderClientID].(string)
	m.DeviceID, _ = h[HeaderDeviceID].(string)
	m.MsgID, _ = h[HeaderMsgID].(string)
	m.Deadline, _ = timeHeader(h, HeaderDeadline, nil)
	m.AcceptedAt, _ = timeHeader(h, HeaderAcceptedAt, nil)
	return m
}

// SetDeadline gives the command whose headers are h the deadline t, in
// whichever form h carries it; false if h has no deadline (a result in
// the older form, or no cafe headers).
func SetDeadline(h map[string]any, t time.Time) bool {
	if v, ok := h[HeaderMeta]; ok {
		p, err := unpackMeta(v)
		if err != nil || p.deadline == 0 {
			return false
		}
		h[HeaderMeta] = packMeta(p.clientID, p.deviceID, timeOf(p.accepted), t, p.msgID)
		return true
	}
	if _, ok := h[HeaderDeadline]; ok {
		h[HeaderDeadline] = t.UnixNano()
		return true
	}
	return false
}
