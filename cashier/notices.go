package cashier

import (
	"errors"
	"net/http"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Poster is what the cashier needs to send status notices: a
// fire-and-forget publish, on a channel of its own (a refused notice must
// not close the channel commands are confirmed on).
type Poster interface {
	Post(exchange, key string, msg amqp.Publishing) error
}

// UseNotices gives the cashier its notice poster; without one, Cafe-Events
// is accepted and the queued notice is not sent. Call it before Run.
func (s *Server) UseNotices(p Poster) { s.notices = p }

// UseRefusals gives the cashier the poster of its refused events (it may
// be the notices' poster: both are fire and forget); without one, a
// command RabbitMQ refused stays queued in the ledger's records and its id
// pending (see refusal). Call it before Run.
func (s *Server) UseRefusals(p Poster) {
	s.refusals = contracts.NewEventBatcher(p.Post, func(n int) { s.m.refusalsUnsent.Add(float64(n)) })
}

// refusal tells the ledger that RabbitMQ refused the command of meta, when
// it did so for certain: nacked it (a full commands queue) or returned it
// (no queue bound). RabbitMQ copies a command into the events queue even
// when the commands queue refuses it, so without this the ledger records
// a command that never runs as queued, its id pending for ever: the app
// told 503 "retry later" would get 409 for the same id. A confirm that
// did not come (timeout, channel lost) says nothing: the command may be
// queued, and it stays pending. The event is fire and forget, batched
// (contracts.EventBatcher); one lost (the cashier dies within
// contracts.EventBatchWait, or has no channel: counted in
// cafe_cashier_refusals_unsent_total) leaves that id pending until its
// record is past retention: the app uses another id.
func (s *Server) refusal(meta contracts.CommandMeta, err error) {
	if s.refusals == nil || !(errors.Is(err, amqplink.ErrNacked) || errors.Is(err, amqplink.ErrReturned)) {
		return
	}
	_ = s.refusals.Add(s.top.CommandsExchange(), contracts.RoutingKeyRefused,
		contracts.NewEvent(contracts.EventRefused, meta.CommandID, meta.ClientID, meta.DeviceID, meta.MsgID, time.Now()))
}

// cafeEvents reads Cafe-Events: absent, or "status" (once).
func cafeEvents(h http.Header) (bool, *contracts.Error) {
	values := h.Values(contracts.HeaderCafeEvents)
	switch {
	case len(values) == 0:
		return false, nil
	case len(values) == 1 && values[0] == contracts.EventsStatus:
		return true, nil
	}
	return false, contracts.NewError(contracts.CodeInvalidRequest, contracts.Detail{Field: contracts.HeaderCafeEvents,
		Reason: "want the value status, once (queued, sent and done notices on the results topic)"})
}

// notify posts a status notice for a command that asked for them.
func (s *Server) notify(meta contracts.CommandMeta, status string) {
	if !meta.Notices || meta.MsgID == "" || s.notices == nil {
		return
	}
	_ = s.notices.Post(s.top.ResultsExchange(), contracts.RoutingKeyResult, contracts.Notice(meta, status, time.Now()))
}
