// Package deadletter lets developers see and replay what the pipeline put
// aside: the messages RabbitMQ dead-lettered from the commands and results
// queues into {prefix}.dead, each with its reason in the x-death header
// ("rejected": not a valid command or result; "delivery_limit": delivered
// too often, e.g. it kept crashing workers).
//
// List reads without removing: it takes up to N messages without acking
// them and closes its channel, which puts them back in the same order.
// Replay republishes chosen dead letters to the exchange and routing key
// they died from (with publisher confirms) and removes each only once its
// copy is confirmed, so a replay interrupted anywhere loses nothing.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Letter is one dead-lettered message.
type Letter struct {
	MessageID  string    `json:"message_id"`
	Queue      string    `json:"queue"`       // where it died
	Exchange   string    `json:"exchange"`    // where it was published, and is replayed to
	RoutingKey string    `json:"routing_key"` // its routing key
	Reason     string    `json:"reason"`      // rejected, delivery_limit, expired, maxlen
	Count      int64     `json:"count"`       // times it died this way
	DiedAt     time.Time `json:"died_at"`
	ClientID   string    `json:"client_id,omitempty"`
	DeviceID   string    `json:"device_id,omitempty"`
	MsgID      string    `json:"msg_id,omitempty"`
	Deadline   time.Time `json:"deadline,omitzero"`
	Body       string    `json:"body"`
	BodyBytes  int       `json:"body_bytes"`
}

// MaxBodyShown bounds the body text a Letter carries.
const MaxBodyShown = 4096

func letterOf(d amqp.Delivery) Letter {
	l := Letter{MessageID: d.MessageId, BodyBytes: len(d.Body)}
	body := d.Body
	if len(body) > MaxBodyShown {
		body = body[:MaxBodyShown]
	}
	l.Body = string(body)
	l.ClientID, _ = d.Headers[contracts.HeaderClientID].(string)
	l.DeviceID, _ = d.Headers[contracts.HeaderDeviceID].(string)
	l.MsgID, _ = d.Headers[contracts.HeaderMsgID].(string)
	if n, ok := d.Headers[contracts.HeaderDeadline].(int64); ok && n > 0 {
		l.Deadline = time.Unix(0, n)
	}
	if death, ok := amqplink.FirstDeath(d.Headers); ok {
		l.Queue, l.Exchange, l.RoutingKey = death.Queue, death.Exchange, death.RoutingKey
		l.Reason, l.Count, l.DiedAt = death.Reason, death.Count, death.Time
	}
	return l
}

// List returns up to limit dead letters of top, oldest first, leaving them
// in the queue.
func List(ctx context.Context, conn *amqp.Connection, top contracts.Topology, limit int) ([]Letter, error) {
	var out []Letter
	_, err := amqplink.Scan(ctx, conn, top.DeadQueue(), limit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		out = append(out, letterOf(*d))
		return amqplink.GiveBack("listed"), nil
	})
	if err != nil && ctx.Err() == nil {
		return out, readErr(top, err)
	}
	return out, ctx.Err()
}

// Selector chooses which dead letters to replay.
type Selector struct {
	IDs    map[string]bool // by message id; empty means any
	Reason string          // by reason; empty means any
}

func (s Selector) match(l Letter) bool {
	if len(s.IDs) > 0 && !s.IDs[l.MessageID] {
		return false
	}
	return s.Reason == "" || s.Reason == l.Reason
}

// ReplayOptions tune a replay.
type ReplayOptions struct {
	Limit  int           // look at no more than this many dead letters
	Extend time.Duration // give replayed commands a new deadline this far from now (0: keep theirs)
	// Progress, if set, is told of each letter replayed or skipped.
	Progress func(l Letter, replayed bool, err error)
}

// ErrNoRoute is returned for a dead letter that does not say where it came from.
var ErrNoRoute = errors.New("dead letter has no x-death exchange to replay to")

// Replay republishes the chosen dead letters and removes them once their
// copies are confirmed. It returns how many it replayed.
func Replay(ctx context.Context, conn *amqp.Connection, top contracts.Topology, sel Selector, opts ReplayOptions) (int, error) {
	pub, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer pub.Close()
	if err := pub.Confirm(false); err != nil {
		return 0, fmt.Errorf("confirm mode: %w", err)
	}
	// Buffered: the client library puts a return in here before it
	// resolves the confirm that follows it, so after each confirm a
	// non-blocking read tells whether that message was unroutable.
	returns := pub.NotifyReturn(make(chan amqp.Return, 1))
	replayed, err := amqplink.Scan(ctx, conn, top.DeadQueue(), opts.Limit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		l := letterOf(*d)
		if !sel.match(l) {
			report(opts, l, false, nil)
			return amqplink.GiveBack("not selected"), nil // stays where it is
		}
		if err := republish(ctx, pub, returns, *d, l, opts.Extend); err != nil {
			report(opts, l, false, err)
			if errors.Is(err, ErrNoRoute) {
				return amqplink.GiveBack("no route"), nil
			}
			return amqplink.Verdict{}, err
		}
		report(opts, l, true, nil)
		return amqplink.Done(), nil // the copy is confirmed: remove the dead letter
	})
	if err != nil && ctx.Err() == nil {
		var ae *amqp.Error
		if errors.As(err, &ae) {
			return replayed, readErr(top, err)
		}
		return replayed, err
	}
	return replayed, ctx.Err()
}

func report(opts ReplayOptions, l Letter, replayed bool, err error) {
	if opts.Progress != nil {
		opts.Progress(l, replayed, err)
	}
}

func republish(ctx context.Context, ch *amqp.Channel, returns <-chan amqp.Return, d amqp.Delivery, l Letter, extend time.Duration) error {
	if l.Exchange == "" {
		return ErrNoRoute
	}
	headers := amqp.Table{}
	for k, v := range d.Headers {
		switch k {
		case "x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
			"x-last-death-exchange", "x-last-death-queue", "x-last-death-reason", "x-delivery-count":
			continue
		}
		headers[k] = v
	}
	if extend > 0 {
		if _, isCommand := headers[contracts.HeaderDeadline]; isCommand {
			headers[contracts.HeaderDeadline] = time.Now().Add(extend).UnixNano()
		}
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, l.Exchange, l.RoutingKey, true, false, amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
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
		return fmt.Errorf("republish %s: rabbitmq refused it (is the queue behind %s full?)", l.MessageID, l.Exchange)
	}
	select {
	case r := <-returns:
		return fmt.Errorf("republish %s: no queue bound to %s for key %q (%s); the dead letter stays", l.MessageID, l.Exchange, l.RoutingKey, r.ReplyText)
	default:
	}
	return nil
}

func readErr(top contracts.Topology, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("there is no queue %s: no cafe service has run with prefix %q on this broker (check --amqp-prefix or CAFE_AMQP_PREFIX): %w",
			top.DeadQueue(), top.Prefix, err)
	}
	return fmt.Errorf("read %s: %w", top.DeadQueue(), err)
}
