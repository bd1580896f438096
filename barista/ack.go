package barista

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
)

// handle is the barista's ack policy, written once: it turns one delivery
// into a Verdict, and the consumer (amqplink) settles the command from it.
//
//   - not a valid command (not published by a cashier, headers, body,
//     size): Poison, so RabbitMQ dead-letters it at once with reason
//     "rejected", and the log says why;
//   - the chain handed it back (shutdown, panic): Retry, or GiveBack when
//     the barista is shutting down; RabbitMQ counts the delivery, and past
//     the queue's delivery limit dead-letters it with reason
//     "delivery_limit";
//   - finished with a Body: publish the result and wait for its confirm,
//     then Done; if the result is not confirmed, Retry (the device sees the
//     same repeat key again and need not act twice);
//   - finished without a Body (one-way command): Done.
//
// So a command leaves the queue only as a confirmed result or a dead letter.
// If the barista dies anywhere in between, the command was not acked and
// RabbitMQ delivers it again.
func (b *Barista) handle(ctx context.Context, d *amqp.Delivery) amqplink.Verdict {
	cmd, err := b.decode(d)
	if err != nil {
		return amqplink.Poison("not a valid command: " + err.Error())
	}
	b.m.queueWait.Set(time.Since(cmd.Meta.AcceptedAt).Seconds())
	b.m.inFlight.Inc()
	defer b.m.inFlight.Dec()

	res, err := b.chain(ctx, cmd)
	if err != nil {
		if ctx.Err() != nil {
			return amqplink.GiveBack("the barista is shutting down: "+err.Error(), who(cmd)...)
		}
		return amqplink.Retry("the command could not be handled: "+err.Error(), who(cmd)...)
	}
	if res.Body != nil {
		if err := b.publishResult(ctx, cmd, res); err != nil {
			return amqplink.Retry("result not confirmed: "+err.Error(), who(cmd)...)
		}
	}
	b.m.commands.WithLabelValues(string(res.Outcome)).Inc()
	if b.log.Enabled(ctx, slog.LevelDebug) {
		b.log.Debug("command done", append(who(cmd), "outcome", res.Outcome)...)
	}
	return amqplink.Done()
}

// who are the log attributes of cmd. Made only when something is logged:
// the slice and each boxed string are allocations, four per command when
// made up front.
func who(cmd *Command) []any {
	return []any{"client_id", cmd.Meta.ClientID, "device_id", cmd.Meta.DeviceID, "msg_id", cmd.Meta.MsgID}
}

// decode reads a delivery as a command: one a cashier published (its
// user-id, which RabbitMQ vouches for; see identity.CommandPublishers),
// re-checking what the cashier checked.
func (b *Barista) decode(d *amqp.Delivery) (*Command, error) {
	if err := identity.CheckPublisher(d.UserId, b.cfg.Publishers, identity.SettingCommandPublishers); err != nil {
		return nil, err
	}
	if len(d.Body) > contracts.MaxBodyBytes {
		return nil, fmt.Errorf("body is %d bytes, over the %d-byte limit", len(d.Body), contracts.MaxBodyBytes)
	}
	meta, err := contracts.ParseCommandMeta(d.MessageId, d.Headers)
	if err != nil {
		return nil, err
	}
	req, err := contracts.ParseRequest(d.Body)
	if err != nil {
		return nil, fmt.Errorf("body is not a valid JSON-RPC request: %w", err)
	}
	if meta.MsgID != string(req.ID) {
		return nil, fmt.Errorf("header %s %q does not match the body's id %q", contracts.HeaderMsgID, contracts.Clip(meta.MsgID), contracts.Clip(string(req.ID)))
	}
	return &Command{Meta: meta, Request: req, Redelivered: d.Redelivered, headers: d.Headers}, nil
}

// publishResult publishes a finished command's result and waits for the
// confirm. It does not use the handler's context: a result that is ready is
// worth publishing even while the barista is shutting down. While RabbitMQ
// blocks publishers (a resource alarm) or refuses the result (results queue
// full), it waits and tries again, up to Config.ResultTimeout: the command
// is done, and handing it back would only make the device repeat it. A lost
// connection ends the attempt at once: the command went back to the queue
// with it.
func (b *Barista) publishResult(ctx context.Context, cmd *Command, res Result) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.ResultTimeout)
	defer cancel()
	now := time.Now()
	h := contracts.ResultHeaders(cmd.headers, res.Outcome)
	h[contracts.HeaderEventAt] = now.UnixNano() // when it finished, for the ledger's history
	if cmd.Meta.Notices {
		h[contracts.HeaderEvents] = contracts.EventsStatus // the caller follows the result with done
	}
	// No content-type or timestamp property: see contracts.ContentTypeJSON.
	msg := amqp.Publishing{MessageId: cmd.Meta.CommandID, Headers: h, Body: res.Body}
	for {
		err := b.results.Publish(ctx, b.resultsExchange, contracts.RoutingKeyResult, msg)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, amqplink.ErrBlocked):
			if werr := b.results.PublishGate().WaitReady(ctx); werr != nil {
				return fmt.Errorf("%w (still blocked after %v)", err, b.cfg.ResultTimeout)
			}
		case errors.Is(err, amqplink.ErrNacked):
			select {
			case <-time.After(retryNacked):
			case <-ctx.Done():
				return err
			}
		default:
			return err
		}
	}
}

// retryNacked is the pause before publishing a refused result again.
const retryNacked = 250 * time.Millisecond
