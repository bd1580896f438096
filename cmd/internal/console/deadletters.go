package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/registry"
)

// Dead is the DeadLetters of the console: cmd/internal/deadletter on a
// connection to RabbitMQ opened for each action (as cafe-ops), with the
// registry re-check and the audit file `cafe dead` uses.
type Dead struct {
	URL       string // amqp://cafe-ops:…@host:port/
	Top       contracts.Topology
	Registry  func() *registry.Registry
	AuditFile string
	ScanLimit int
	Log       *slog.Logger
}

func (d *Dead) dial() (*amqp.Connection, string, error) {
	u, err := url.Parse(amqplink.FirstURL(d.URL)) // every URL of a list has the same user
	if err != nil || u.User == nil {
		return nil, "", fmt.Errorf("dead letters: the AMQP URL names no login")
	}
	conn, err := amqplink.Dial(amqplink.Config{URL: d.URL, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, "", fmt.Errorf("RabbitMQ unreachable at %s: %w", u.Host, err)
	}
	return conn, u.User.Username(), nil
}

func (d *Dead) scanLimit() int {
	if d.ScanLimit > 0 {
		return d.ScanLimit
	}
	return deadletter.DefaultScanLimit
}

// List lists the letters f chooses.
func (d *Dead) List(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error) {
	conn, _, err := d.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return deadletter.List(ctx, conn, d.Top, f, d.scanLimit())
}

// Show is one letter and its body.
func (d *Dead) Show(ctx context.Context, id string) (deadletter.Letter, []byte, error) {
	conn, _, err := d.dial()
	if err != nil {
		return deadletter.Letter{}, nil, err
	}
	defer conn.Close()
	return deadletter.Show(ctx, conn, d.Top, id, d.scanLimit())
}

// Replay replays (or, dry, decides) the letters f chooses, re-checked
// against the registry, and audits it under operator's name.
func (d *Dead) Replay(ctx context.Context, f deadletter.Filter, dry bool, operator string) (deadletter.Report, []deadletter.Outcome, error) {
	conn, user, err := d.dial()
	if err != nil {
		return deadletter.Report{}, nil, err
	}
	defer conn.Close()
	var outcomes []deadletter.Outcome
	opts := deadletter.ReplayOptions{ScanLimit: d.scanLimit(), DryRun: dry, User: user, Check: deadletter.RegistryCheck(d.Registry()),
		Progress: func(o deadletter.Outcome) { outcomes = append(outcomes, o) }}
	rep, err := deadletter.Replay(ctx, conn, d.Top, f, opts)
	if err == nil && !dry {
		err = d.audit(deadletter.AuditRecord{Action: "replay", Identity: user, Done: rep.Done, Refused: rep.Refused}, operator, f)
	}
	return rep, outcomes, err
}

// Purge removes the letters f chooses, and audits it.
func (d *Dead) Purge(ctx context.Context, f deadletter.Filter, operator string) ([]deadletter.Letter, error) {
	conn, user, err := d.dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	gone, err := deadletter.Purge(ctx, conn, d.Top, f, d.scanLimit())
	if err == nil {
		err = d.audit(deadletter.AuditRecord{Action: "purge", Identity: user, Done: len(gone)}, operator, f)
	}
	return gone, err
}

// audit records an action in the audit file `cafe dead` writes to; the
// os_user field names the console's operator ("console:alice").
func (d *Dead) audit(r deadletter.AuditRecord, operator string, f deadletter.Filter) error {
	r.Time, r.OSUser, r.Prefix, r.Filter = time.Now().UTC(), "console:"+operator, d.Top.Prefix, f.String()
	return deadletter.Audit(d.AuditFile, d.Log, r)
}
