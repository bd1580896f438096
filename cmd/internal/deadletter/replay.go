package deadletter

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/time/rate"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// Check says why a dead letter may not be replayed now (nil: it may).
// RegistryCheck is the one `cafe dead replay` uses.
type Check func(l Letter) error

// ReplayOptions tune a replay.
type ReplayOptions struct {
	ScanLimit int           // look at no more than this many dead letters (0: DefaultScanLimit)
	DryRun    bool          // decide, publish nothing, remove nothing
	Extend    time.Duration // give replayed commands a new deadline this far from now (0: keep theirs)
	Limiter   *rate.Limiter // paces the republishing (nil: as fast as confirms come)
	Check     Check         // re-checks each chosen letter (nil: none)
	User      string        // the AMQP user-id of the copies: the connection's login (see identity.CommandPublishers)
	// Progress, if set, is told what became of each chosen letter.
	Progress func(Outcome)
}

// Outcome is what became of one chosen dead letter.
type Outcome struct {
	Letter   Letter
	Replayed bool  // republished and removed (in a dry run: would be)
	Refused  error // not replayed, and why; it stays
}

// Report counts a replay or purge.
type Report struct {
	Done    int `json:"done"`    // replayed (or removed, for a purge); in a dry run, would be
	Refused int `json:"refused"` // chosen but refused; they stay
}

// Refusals a replay gives without asking the registry.
var (
	ErrNoRoute = errors.New("dead letter has no x-death exchange to replay to")
	ErrExpired = errors.New("its deadline has passed (give it a new one with --extend)")
)

// Replay republishes the dead letters f chooses that pass the checks, and
// removes each once its copy is confirmed. A refused letter stays where it
// is. An error stops the replay; what was replayed before stays replayed.
func Replay(ctx context.Context, conn *amqp.Connection, top contracts.Topology, f Filter, opts ReplayOptions) (Report, error) {
	pub, err := newRepublisher(conn, opts.User)
	if err != nil {
		return Report{}, err
	}
	defer pub.ch.Close()
	var rep Report
	now := time.Now()
	_, err = scan(ctx, conn, top, opts.ScanLimit, func(d *amqp.Delivery) (amqplink.Verdict, error) {
		l := letterOf(*d)
		if !f.Match(l, now) {
			return amqplink.GiveBack("not chosen"), nil
		}
		if f.Limit > 0 && rep.Done+rep.Refused >= f.Limit {
			return amqplink.Verdict{}, errEnough
		}
		if why := refusal(l, opts); why != nil {
			rep.Refused++
			report(opts, Outcome{Letter: l, Refused: why})
			return amqplink.GiveBack("refused"), nil
		}
		if !opts.DryRun {
			if err := pub.republish(ctx, *d, l, opts); err != nil {
				return amqplink.Verdict{}, err
			}
		}
		rep.Done++
		report(opts, Outcome{Letter: l, Replayed: true})
		if opts.DryRun {
			return amqplink.GiveBack("dry run"), nil
		}
		return amqplink.Done(), nil // the copy is confirmed: remove the dead letter
	})
	return rep, err
}

func refusal(l Letter, opts ReplayOptions) error {
	if l.Exchange == "" {
		return ErrNoRoute
	}
	if !l.Deadline.IsZero() && opts.Extend == 0 && time.Now().After(l.Deadline) {
		return fmt.Errorf("%w: it was %s", ErrExpired, l.Deadline.Format(time.RFC3339))
	}
	if opts.Check != nil {
		return opts.Check(l)
	}
	return nil
}

func report(opts ReplayOptions, o Outcome) {
	if opts.Progress != nil {
		opts.Progress(o)
	}
}
