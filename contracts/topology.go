package contracts

import "errors"

// RabbitMQ topology. Every name starts with a prefix (default "cafe"), so
// several pipelines, or several tests, can share one broker and vhost.
//
//	{prefix}.commands  direct exchange ──"command"──▶ {prefix}.commands  quorum queue
//	{prefix}.results   direct exchange ──"result"───▶ {prefix}.results   quorum queue
//	{prefix}.dead      fanout exchange ─┬───────────▶ {prefix}.dead         quorum queue (kept for `cafe dead`)
//	                                    └───────────▶ {prefix}.dead.notify  quorum queue (the caller tells apps)
//	{prefix}.events    fanout exchange ──────────────▶ {prefix}.events   quorum queue (the ledger's)
//
// The events queue has five bindings: the events exchange (above), the
// commands exchange twice ("command", and "refused", which no other queue
// is bound with), the results exchange ("result") and the dead-letter
// exchange. So RabbitMQ itself copies every accepted command, every result
// and every dead letter into it: no role publishes anything extra for
// those. Only the facts no existing message carries are published, fire
// and forget (see EventKind), many to a message (see EventBatch): to the
// events exchange a barista's "sent" (the device has the command) and a
// caller's "delivered" (Mosquitto took the result); to the commands
// exchange with key "refused" the cashier's "refused" (RabbitMQ did not
// take a command, whose copy the events queue may have taken all the
// same). An Unrecorded topology declares the events queue with none of
// the five, and nothing is posted. A topology declared before the
// "refused" binding existed drops the refusals (unroutable, not
// mandatory) until it is declared again (`cafe topology`): binding adds
// to a queue, its arguments unchanged.
//
// The events queue carries
//
//	x-queue-type  quorum           survives broker restarts
//	x-max-length  EventsMaxLength  bounded: a ledger that is away for long cannot fill the broker
//	x-overflow    drop-head        at the limit the OLDEST events are dropped, never a publish refused:
//	                               reject-publish would nack the cashier's commands and the
//	                               baristas' results routed to it too, putting the ledger on the
//	                               critical path; drop-head keeps commands and results flowing and
//	                               loses only the oldest history
//
// and no delivery limit (a batch the database refused goes back and waits),
// no dead-letter exchange (an event is a copy; the command is not lost).
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
// inspection.
//
// Exchanges and Queues are the one list of what a topology consists of:
// services declare from it on every connection (so whichever starts first
// creates it), and tests and the bench delete from it. RabbitMQ refuses to
// redeclare a queue with different arguments; changing a limit on an
// existing queue means deleting the queue or moving to a new prefix.

// Routing keys.
const (
	RoutingKeyCommand = "command"
	RoutingKeyResult  = "result"
	RoutingKeyRefused = "refused" // the cashier's refusals, to the events queue only (see EventRefused)
)

// Defaults for the topology.
const (
	DefaultPrefix            = "cafe"
	DefaultDeliveryLimit     = 5
	DefaultCommandsMaxLength = 100_000
	DefaultResultsMaxLength  = 1_000_000
	// DefaultEventsMaxLength holds the messages of at least 500 000
	// commands (two copies each, and at most two explicit events, fewer
	// when they share batches): at 100 commands a second, well over an
	// hour of PostgreSQL being away.
	DefaultEventsMaxLength = 2_000_000
)

// NotifyQueueMaxLength bounds the notify queue: it holds copies, so with no
// caller running the oldest notices are dropped rather than piling up.
const NotifyQueueMaxLength = 100_000

// Topology names the exchanges and queues of one pipeline and their limits.
// Unlike the roles' configurations it is not filled from defaults in place,
// because a zero max length is meaningful (no limit): start from
// DefaultTopology.
type Topology struct {
	Prefix            string
	DeliveryLimit     int // deliveries after which a message is dead-lettered
	CommandsMaxLength int // commands queue capacity; 0 means no limit
	ResultsMaxLength  int // results queue capacity; 0 means no limit
	EventsMaxLength   int // events queue capacity (drop-head); 0 means no limit
	// Unrecorded: no ledger keeps this pipeline's records (cafe up
	// --ledgers 0), so the events queue is declared with no binding at
	// all: RabbitMQ copies no command, result or dead letter into it, and
	// events posted to the events exchange go nowhere. Bound and unread,
	// it would cost every command two more quorum-queue writes, inside the
	// cashier's and the barista's confirms, and grow to its limit. It is
	// still declared, so that every role's check of the topology (the
	// queues exist) holds. Declaring removes no binding: a queue left bound
	// by a run with a ledger keeps its copies until it is deleted.
	Unrecorded bool
}

// DefaultTopology is the topology with every default filled in.
func DefaultTopology() Topology {
	return Topology{
		Prefix:            DefaultPrefix,
		DeliveryLimit:     DefaultDeliveryLimit,
		CommandsMaxLength: DefaultCommandsMaxLength,
		ResultsMaxLength:  DefaultResultsMaxLength,
		EventsMaxLength:   DefaultEventsMaxLength,
	}
}

// The settings of a topology (see Setting).
var (
	SettingPrefix         = Setting{Flag: "amqp-prefix", Env: "CAFE_AMQP_PREFIX"}
	SettingDeliveryLimit  = Setting{Flag: "delivery-limit", Env: "CAFE_DELIVERY_LIMIT"}
	SettingCommandsMaxLen = Setting{Flag: "queue-max-length", Env: "CAFE_QUEUE_MAX_LENGTH"}
	SettingResultsMaxLen  = Setting{Flag: "results-max-length", Env: "CAFE_RESULTS_MAX_LENGTH"}
	SettingEventsMaxLen   = Setting{Flag: "events-max-length", Env: "CAFE_EVENTS_MAX_LENGTH"}
)

// Validate reports what is wrong with t.
func (t Topology) Validate() error {
	var errs []error
	if !validToken(t.Prefix, 64) {
		errs = append(errs, SettingPrefix.Errorf("%q: want 1 to 64 characters from A-Z a-z 0-9 . _ : -", t.Prefix))
	}
	if t.DeliveryLimit < 1 {
		errs = append(errs, SettingDeliveryLimit.Errorf("%d: want at least 1", t.DeliveryLimit))
	}
	if t.CommandsMaxLength < 0 {
		errs = append(errs, SettingCommandsMaxLen.Errorf("%d: want 0 (no limit) or more", t.CommandsMaxLength))
	}
	if t.ResultsMaxLength < 0 {
		errs = append(errs, SettingResultsMaxLen.Errorf("%d: want 0 (no limit) or more", t.ResultsMaxLength))
	}
	if t.EventsMaxLength < 0 {
		errs = append(errs, SettingEventsMaxLen.Errorf("%d: want 0 (no limit) or more", t.EventsMaxLength))
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
func (t Topology) EventsExchange() string   { return t.Prefix + ".events" }
func (t Topology) EventsQueue() string      { return t.Prefix + ".events" }

// Exchange kinds, as AMQP names them.
const (
	KindDirect = "direct"
	KindFanout = "fanout"
)

// Exchange is one exchange of a topology; all are durable.
type Exchange struct {
	Name string
	Kind string // KindDirect or KindFanout
}

// Queue is one queue of a topology, with its binding; all are durable.
type Queue struct {
	Name     string
	Exchange string         // bound to this exchange ("": not bound, see Unrecorded)
	Key      string         // with this routing key ("" for a fanout)
	Args     map[string]any // declaration arguments
	Also     []Binding      // further bindings (the events queue's copies)
}

// Binding binds a queue to Exchange with Key.
type Binding struct{ Exchange, Key string }

// Bindings lists every binding of q, its first one first.
func (q Queue) Bindings() []Binding {
	if q.Exchange == "" {
		return q.Also
	}
	return append([]Binding{{q.Exchange, q.Key}}, q.Also...)
}

// Exchanges lists every exchange of t, in declaration order.
func (t Topology) Exchanges() []Exchange {
	return []Exchange{
		{t.CommandsExchange(), KindDirect},
		{t.ResultsExchange(), KindDirect},
		{t.DeadExchange(), KindFanout},
		{t.EventsExchange(), KindFanout},
	}
}

// Queues lists every queue of t with its binding, in declaration order
// (after the exchanges they are bound to).
func (t Topology) Queues() []Queue {
	return []Queue{
		{t.CommandsQueue(), t.CommandsExchange(), RoutingKeyCommand, t.workQueueArgs(t.CommandsMaxLength), nil},
		{t.ResultsQueue(), t.ResultsExchange(), RoutingKeyResult, t.workQueueArgs(t.ResultsMaxLength), nil},
		{t.DeadQueue(), t.DeadExchange(), "", map[string]any{"x-queue-type": "quorum"}, nil},
		// A notice that cannot be delivered within the delivery limit is
		// dropped: the dead letter it announces stays in the dead-letter queue.
		{t.DeadNotifyQueue(), t.DeadExchange(), "", map[string]any{
			"x-queue-type":     "quorum",
			"x-max-length":     int64(NotifyQueueMaxLength),
			"x-overflow":       "drop-head",
			"x-delivery-limit": int64(t.DeliveryLimit),
		}, nil},
		t.eventsQueue(),
	}
}

// eventsQueue is the events queue with its bindings (none when t is
// Unrecorded).
func (t Topology) eventsQueue() Queue {
	if t.Unrecorded {
		return Queue{Name: t.EventsQueue(), Args: t.eventsQueueArgs()}
	}
	return Queue{Name: t.EventsQueue(), Exchange: t.EventsExchange(), Args: t.eventsQueueArgs(), Also: []Binding{
		{t.CommandsExchange(), RoutingKeyCommand},
		{t.CommandsExchange(), RoutingKeyRefused},
		{t.ResultsExchange(), RoutingKeyResult},
		{t.DeadExchange(), ""},
	}}
}

func (t Topology) eventsQueueArgs() map[string]any {
	args := map[string]any{"x-queue-type": "quorum", "x-overflow": "drop-head"}
	if t.EventsMaxLength > 0 {
		args["x-max-length"] = int64(t.EventsMaxLength)
	}
	return args
}

// QueueArgs returns the declaration arguments of the queue named name, or
// nil if t has no such queue.
func (t Topology) QueueArgs(name string) map[string]any {
	for _, q := range t.Queues() {
		if q.Name == name {
			return q.Args
		}
	}
	return nil
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
