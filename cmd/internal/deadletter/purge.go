package deadletter

import (
	"context"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Purge removes the dead letters f chooses, for good, and returns them.
// To remove exactly what an operator was shown, list first and purge
// with the listed ids in f.IDs: letters that arrived in between stay.
func Purge(ctx context.Context, conn *amqp.Connection, top contracts.Topology, f Filter, scanLimit int) ([]Letter, error) {
	var removed []Letter
	now := time.Now()
	_, err := scan(ctx, conn, top, scanLimit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		if f.Limit > 0 && len(removed) >= f.Limit {
			return amqplink.Verdict{}, errEnough
		}
		l := letterOf(*d)
		if !f.Match(l, now) {
			return amqplink.GiveBack("not chosen"), nil
		}
		removed = append(removed, l)
		return amqplink.Done(), nil
	})
	return removed, err
}
