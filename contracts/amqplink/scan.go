package amqplink

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Scan walks a queue for tools (cafe dead): it takes up to limit messages
// with basic.get on a channel of its own, oldest first, and asks visit
// about each. A Done verdict removes that message (Scan acks it, after
// visit returned, so whatever visit did with it — a confirmed republish —
// has happened first). Any other verdict leaves it where it was: Scan does
// not settle those, and closing its channel at the end returns them to the
// queue in their original order. An error from visit stops the scan.
//
// It returns how many messages it removed.
func Scan(ctx context.Context, conn *amqp.Connection, queue string, limit int, visit func(d *amqp.Delivery) (Verdict, error)) (removed int, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return 0, fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close() // returns every message not removed, in order
	for seen := 0; seen < limit && ctx.Err() == nil; seen++ {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			return removed, err
		}
		if !ok {
			break
		}
		v, err := visit(&d)
		if err != nil {
			return removed, err
		}
		if v.Action != Ack {
			continue
		}
		if err := settle(&d, v); err != nil {
			return removed, fmt.Errorf("could not remove message %s from %s (it stays, and may be handled again): %w", d.MessageId, queue, err)
		}
		removed++
	}
	return removed, ctx.Err()
}
