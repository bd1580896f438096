package cashier

import (
	"net/http"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
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
