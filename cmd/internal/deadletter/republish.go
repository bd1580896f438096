package deadletter

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
)

// republisher publishes copies of dead letters on a confirmed channel.
type republisher struct {
	ch      *amqp.Channel
	returns <-chan amqp.Return
	user    string
}

func newRepublisher(conn *amqp.Connection, user string) (*republisher, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		ch.Close()
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	// Buffered: the client library puts a return in here before it
	// resolves the confirm that follows it, so after each confirm a
	// non-blocking read tells whether that message was unroutable.
	return &republisher{ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1)), user: user}, nil
}

// deathHeaders are what RabbitMQ adds when it dead-letters or redelivers;
// a copy starts without them.
var deathHeaders = map[string]bool{
	"x-death": true, "x-first-death-exchange": true, "x-first-death-queue": true, "x-first-death-reason": true,
	"x-last-death-exchange": true, "x-last-death-queue": true, "x-last-death-reason": true, "x-delivery-count": true,
}

func copyHeaders(d amqp.Delivery, l Letter, extend time.Duration) amqp.Table {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		if !deathHeaders[k] {
			headers[k] = v
		}
	}
	headers[HeaderReplayCount] = l.ReplayCount + 1
	if extend > 0 {
		contracts.SetDeadline(headers, time.Now().Add(extend)) // only what has a deadline: a command (or a result carrying its command's)
	}
	return headers
}

func (p *republisher) republish(ctx context.Context, d amqp.Delivery, l Letter, opts ReplayOptions) error {
	if opts.Limiter != nil {
		if err := opts.Limiter.Wait(ctx); err != nil {
			return err
		}
	}
	conf, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, l.Exchange, l.RoutingKey, true, false, amqp.Publishing{
		Headers:         copyHeaders(d, l, opts.Extend),
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		UserId:          p.user,
		Body:            d.Body,
	})
	if err != nil {
		return fmt.Errorf("republish %s: %w", l.MessageID, err)
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("republish %s: no confirm: %w", l.MessageID, err)
	}
	if !ok {
		return fmt.Errorf("republish %s: rabbitmq refused it (is the queue behind %s full?); it stays", l.MessageID, l.Exchange)
	}
	select {
	case r := <-p.returns:
		return fmt.Errorf("republish %s: no queue bound to %s for key %q (%s); the dead letter stays", l.MessageID, l.Exchange, l.RoutingKey, r.ReplyText)
	default:
	}
	return nil
}
