package contracts

import (
	"errors"
	"fmt"
	"time"
)

// RabbitMQ topology. Every name starts with a prefix (default "cafe"), so
// several pipelines, or several tests, can share one broker and vhost.
//
//	{prefix}.commands  direct exchange ──"command"──▶ {prefix}.commands  quorum queue
//	{prefix}.results   direct exchange ──"result"───▶ {prefix}.results   quorum queue
//	{prefix}.dead      fanout exchange ─┬───────────▶ {prefix}.dead         quorum queue (kept for `cafe dead`)
//	                                    └───────────▶ {prefix}.dead.notify  quorum queue (the caller tells apps)
//
// The commands and results queues carry
//
//	x-queue-type            quorum          replicated, durable, survives broker restarts
//	x-delivery-limit        DeliveryLimit   a message redelivered more often is dead-lettered
//	x-dead-letter-exchange  {prefix}.dead   rejected and over-limit messages go there, with x-death
//	x-dead-letter-strategy  at-least-once   dead-lettering itself cannot lose a message
//	x-overflow              reject-publish  required by at-least-once; a full queue nacks publishes
//	x-max-length            MaxLength       backpressure: the cashier answers 503 when full
//
// The dead-letter queue has no limits: nothing in it expires or is dropped;
// `cafe dead` lists and replays it. The notify queue receives a copy of
// every dead letter, so that the caller can tell an app that its command was
// set aside (CodeDeadLettered) while the dead letter itself stays for
// inspection. Services declare this topology on every
// connection, so it is (re)created by whichever starts first. RabbitMQ
// refuses to redeclare a queue with different arguments; changing a limit on
// an existing queue means deleting the queue or moving to a new prefix.

// Routing keys.
const (
	RoutingKeyCommand = "command"
	RoutingKeyResult  = "result"
)

// Defaults for the topology.
const (
	DefaultPrefix            = "cafe"
	DefaultDeliveryLimit     = 5
	DefaultCommandsMaxLength = 100_000
	DefaultResultsMaxLength  = 1_000_000
)

// Topology names the exchanges and queues of one pipeline and their limits.
type Topology struct {
	Prefix            string
	DeliveryLimit     int // deliveries after which a message is dead-lettered
	CommandsMaxLength int // commands queue capacity; 0 means no limit
	ResultsMaxLength  int // results queue capacity; 0 means no limit
}

// DefaultTopology is the topology with every default filled in.
func DefaultTopology() Topology {
	return Topology{
		Prefix:            DefaultPrefix,
		DeliveryLimit:     DefaultDeliveryLimit,
		CommandsMaxLength: DefaultCommandsMaxLength,
		ResultsMaxLength:  DefaultResultsMaxLength,
	}
}

// Validate reports what is wrong with t.
func (t Topology) Validate() error {
	var errs []error
	if !validToken(t.Prefix, 64) {
		errs = append(errs, fmt.Errorf("amqp prefix %q: want 1 to 64 characters from A-Z a-z 0-9 . _ : -", t.Prefix))
	}
	if t.DeliveryLimit < 1 {
		errs = append(errs, fmt.Errorf("delivery limit %d: want at least 1", t.DeliveryLimit))
	}
	if t.CommandsMaxLength < 0 || t.ResultsMaxLength < 0 {
		errs = append(errs, errors.New("queue max length: want 0 (no limit) or more"))
	}
	return errors.Join(errs...)
}

func (t Topology) CommandsExchange() string { return t.Prefix + ".commands" }
func (t Topology) CommandsQueue() string    { return t.Prefix + ".commands" }
func (t Topology) ResultsExchange() string  { return t.Prefix + ".results" }
func (t Topology) ResultsQueue() string     { return t.Prefix + ".results" }
func (t Topology) DeadExchange() string     { return t.Prefix + ".dead" }
func (t Topology) DeadQueue() string        { return t.Prefix + ".dead" }
func (t Topology) DeadNotifyQueue() string  { return t.Prefix + ".dead.notify" }

// CommandsQueueArgs are the declaration arguments of the commands queue.
func (t Topology) CommandsQueueArgs() map[string]any {
	return t.workQueueArgs(t.CommandsMaxLength)
}

// ResultsQueueArgs are the declaration arguments of the results queue.
func (t Topology) ResultsQueueArgs() map[string]any {
	return t.workQueueArgs(t.ResultsMaxLength)
}

// DeadQueueArgs are the declaration arguments of the dead-letter queue.
func (t Topology) DeadQueueArgs() map[string]any {
	return map[string]any{"x-queue-type": "quorum"}
}

// NotifyQueueMaxLength bounds the notify queue: it holds copies, so with no
// caller running the oldest notices are dropped rather than piling up.
const NotifyQueueMaxLength = 100_000

// DeadNotifyQueueArgs are the declaration arguments of the notify queue. A
// notice that cannot be delivered within the delivery limit is dropped (the
// dead letter it announces stays in the dead-letter queue).
func (t Topology) DeadNotifyQueueArgs() map[string]any {
	return map[string]any{
		"x-queue-type":     "quorum",
		"x-max-length":     int64(NotifyQueueMaxLength),
		"x-overflow":       "drop-head",
		"x-delivery-limit": int64(t.DeliveryLimit),
	}
}

func (t Topology) workQueueArgs(maxLength int) map[string]any {
	args := map[string]any{
		"x-queue-type":           "quorum",
		"x-delivery-limit":       int64(t.DeliveryLimit),
		"x-dead-letter-exchange": t.DeadExchange(),
		"x-dead-letter-strategy": "at-least-once",
		"x-overflow":             "reject-publish",
	}
	if maxLength > 0 {
		args["x-max-length"] = int64(maxLength)
	}
	return args
}

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
)

// Content type of every body the pipeline publishes.
const ContentTypeJSON = "application/json"

// Outcome says how a command ended; results carry it in HeaderOutcome and
// services count it in metrics (a bounded label).
type Outcome string

const (
	OutcomeReply       Outcome = "reply"       // the device replied; its response is the result
	OutcomeOffline     Outcome = "offline"     // CodeDeviceOffline
	OutcomeTimeout     Outcome = "timeout"     // CodeDeviceTimeout
	OutcomeExpired     Outcome = "expired"     // CodeExpired
	OutcomeUnreachable Outcome = "unreachable" // CodeDeviceUnreachable
	OutcomeBadReply    Outcome = "bad_reply"   // CodeBadDeviceReply
	OutcomeDeadLetter  Outcome = "dead_letter" // CodeDeadLettered
	OutcomeSent        Outcome = "sent"        // one-way command handed to the MQTT broker; no result
)

// OutcomeOf is the outcome that goes with a pipeline error code.
func OutcomeOf(c Code) Outcome {
	switch c {
	case CodeDeviceOffline:
		return OutcomeOffline
	case CodeDeviceTimeout:
		return OutcomeTimeout
	case CodeExpired:
		return OutcomeExpired
	case CodeDeviceUnreachable:
		return OutcomeUnreachable
	case CodeBadDeviceReply:
		return OutcomeBadReply
	case CodeDeadLettered:
		return OutcomeDeadLetter
	}
	return OutcomeReply
}

// CommandMeta is what travels with a command besides the app's bytes.
type CommandMeta struct {
	CommandID  string    // AMQP message id; the repeat key
	ClientID   string    // HeaderClientID
	DeviceID   string    // HeaderDeviceID
	MsgID      string    // HeaderMsgID; "" for a one-way command
	Deadline   time.Time // HeaderDeadline
	AcceptedAt time.Time // HeaderAcceptedAt
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
		errs = append(errs, fmt.Errorf("message id %q is not a valid command id", clip(messageID)))
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

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
