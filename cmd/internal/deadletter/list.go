package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// DefaultScanLimit is how many dead letters one command looks at, at most.
const DefaultScanLimit = 100_000

// ErrNotFound is returned by Show for an id that is not in the queue.
var ErrNotFound = errors.New("no such dead letter")

// List returns the dead letters of top that f chooses, oldest first,
// leaving every one in the queue (see the package doc for why this is
// safe). It looks at no more than scanLimit letters.
func List(ctx context.Context, conn *amqp.Connection, top contracts.Topology, f Filter, scanLimit int) ([]Letter, error) {
	var out []Letter
	now := time.Now()
	_, err := scan(ctx, conn, top, scanLimit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		if l := letterOf(*d); f.Match(l, now) {
			out = append(out, l)
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			return amqplink.Verdict{}, errEnough
		}
		return amqplink.GiveBack("listed"), nil
	})
	return out, err
}

// Show returns the dead letter with message id id, with its whole body.
func Show(ctx context.Context, conn *amqp.Connection, top contracts.Topology, id string, scanLimit int) (Letter, []byte, error) {
	var found *Letter
	var body []byte
	_, err := scan(ctx, conn, top, scanLimit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		if d.MessageId != id {
			return amqplink.GiveBack("not it"), nil
		}
		l := letterOf(*d)
		found, body = &l, d.Body
		return amqplink.Verdict{}, errEnough
	})
	if err != nil {
		return Letter{}, nil, err
	}
	if found == nil {
		return Letter{}, nil, fmt.Errorf("%w with message id %q in %s (cafe dead list shows the ids)", ErrNotFound, id, top.DeadQueue())
	}
	return *found, body, nil
}

// errEnough tells scan that the visitor has seen enough: scan gives every
// later letter back unvisited.
var errEnough = errors.New("enough")

// scan is amqplink.Scan over the dead queue with the browse guard (see
// the package doc) and errors that say what to do. It always takes every
// letter up to limit, even once the visitor has had enough: RabbitMQ puts
// returned messages ahead of the rest in the order they are returned, so
// returning all of them at once keeps the queue's order, while returning
// only the first few would move them behind letters returned earlier.
func scan(ctx context.Context, conn *amqp.Connection, top contracts.Topology, limit int, visit func(d *amqp.Delivery) (amqplink.Verdict, error)) (int, error) {
	if limit <= 0 {
		limit = DefaultScanLimit
	}
	limited := deliveryLimited(conn)
	enough := false
	n, err := amqplink.Scan(ctx, conn, top.DeadQueue(), limit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		if c, _ := d.Headers["x-delivery-count"].(int64); limited && c >= browseGuard {
			return amqplink.Verdict{}, fmt.Errorf("dead letter %s has been looked at %d times and this RabbitMQ (4 or later) drops a quorum queue's message at its delivery limit (20 by default): stopped so it is not lost; give %s a policy with delivery-limit -1, or replay it",
				d.MessageId, c, top.DeadQueue())
		}
		if enough {
			return amqplink.GiveBack("not looked at"), nil
		}
		v, err := visit(d)
		if errors.Is(err, errEnough) {
			enough = true
			return amqplink.GiveBack("not looked at"), nil
		}
		return v, err
	})
	if err != nil && ctx.Err() == nil {
		return n, readErr(top, err)
	}
	return n, ctx.Err()
}

// browseGuard is the delivery count at which a browse stops on a broker
// whose quorum queues have a default delivery limit (20).
const browseGuard = 15

// deliveryLimited reports whether the broker gives quorum queues a
// delivery limit by default (RabbitMQ 4.0 and later).
func deliveryLimited(conn *amqp.Connection) bool {
	v, _ := conn.Properties["version"].(string)
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return major >= 4
}

func readErr(top contracts.Topology, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("there is no queue %s: no cafe service has run with prefix %q on this broker (check --amqp-prefix or CAFE_AMQP_PREFIX): %w",
			top.DeadQueue(), top.Prefix, err)
	}
	if errors.As(err, &ae) {
		return fmt.Errorf("read %s: %w", top.DeadQueue(), err)
	}
	return err
}
