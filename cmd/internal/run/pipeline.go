package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/cli"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
)

// Pipeline is the roles one process runs, wired and stopped the same way
// whether it is one role (cmd/cashier, cmd/barista, cmd/caller) or all of
// them (cafe up).
//
// Run starts everything, and on ctx's end stops the roles first (each
// drains what it holds), then what runs alongside them, then the ops
// server, so health and metrics stay up until the process has finished
// shutting down. A role that fails stops the rest. SIGHUP reloads the
// cashier's client registry.
type Pipeline struct {
	Cashier  *Cashier
	Baristas []*Barista
	Callers  []*Caller
	Ledgers  []*Ledger
	// Alongside run beside the roles and stop after them: a simulated
	// fleet's devices outlive the barista, so commands in hand can finish.
	Alongside []func(context.Context) error
	// Ops serves health and metrics when there is no cashier to serve them.
	Ops *Ops
	Log *slog.Logger
}

// Role is a Cashier, Barista or Caller.
type Role interface {
	Run(context.Context) error
	Ready() error
}

// roles lists what the pipeline runs, by name.
func (p *Pipeline) roles() map[string]Role {
	out := map[string]Role{}
	if p.Cashier != nil {
		out["cashier"] = p.Cashier
	}
	for i, b := range p.Baristas {
		out[fmt.Sprintf("barista#%d", i+1)] = b
	}
	for i, c := range p.Callers {
		out[fmt.Sprintf("caller#%d", i+1)] = c
	}
	for i, l := range p.Ledgers {
		out[fmt.Sprintf("ledger#%d", i+1)] = l
	}
	return out
}

// Ready says why some role cannot work, or nil.
func (p *Pipeline) Ready() error {
	var errs []error
	for _, r := range p.roles() {
		errs = append(errs, r.Ready())
	}
	return errors.Join(errs...)
}

// Run runs the pipeline until ctx is done or a role fails; see Pipeline.
func (p *Pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopAfter, waitAfter := background(ctx, p.Alongside...)
	stopOps, waitOps := func() {}, func() {}
	if p.Ops != nil {
		stopOps, waitOps = background(ctx, p.Ops.Run)
	}
	if p.Cashier != nil {
		defer p.reloadOnHangup(ctx)()
	}
	var roles sync.WaitGroup
	for name, r := range p.roles() {
		roles.Go(func() {
			if err := r.Run(ctx); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		})
	}
	roles.Wait()
	stopAfter()
	waitAfter()
	stopOps()
	waitOps()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// reloadOnHangup reloads the cashier's registry on every SIGHUP until ctx
// is done or the returned stop is called.
func (p *Pipeline) reloadOnHangup(ctx context.Context) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-hup:
				if err := p.Cashier.Reload(); err != nil {
					p.Log.Error("client registry not reloaded; keeping the old one", "err", err)
				}
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// WaitReady polls until the pipeline is ready or ctx is done; it reports
// whether it became ready.
func (p *Pipeline) WaitReady(ctx context.Context) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for p.Ready() != nil {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// DeclareTopology declares the topology of b as cafe-admin (cafe's roles may
// only check that it exists), trying again until it succeeds or ctx is
// done: for `cafe up`, which runs on the machine whose auth key it holds.
func DeclareTopology(b cli.Brokers, log *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		cfg := b.AMQP(identity.Admin, "cafe-topology")
		for ctx.Err() == nil {
			conn, err := amqplink.Dial(cfg)
			if err == nil {
				err = amqplink.Ensure(conn, cfg.Topology, false)
				if err == nil && cfg.Topology.Unrecorded {
					warnBoundEvents(conn, cfg.Topology, log)
				}
				_ = conn.Close()
				if err == nil {
					log.Info("topology declared", "prefix", cfg.Topology.Prefix)
					return nil
				}
			}
			log.Warn("cannot declare the topology as cafe-admin yet; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		return nil
	}
}

// warnBoundEvents says so when an unrecorded topology's events queue holds
// messages: declaring it unbound removes no binding, so one left bound by a
// run with a ledger still gets a copy of every command and result, costing
// RabbitMQ two quorum-queue writes a command with nobody to read them.
func warnBoundEvents(conn *amqp.Connection, t contracts.Topology, log *slog.Logger) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(t.EventsQueue(), true, false, false, false, nil)
	if err == nil && q.Messages > 0 && q.Consumers == 0 {
		log.Warn("no ledger, but the events queue holds messages: it may still be bound from a run with a ledger, and RabbitMQ then copies every command and result into it; delete it (rabbitmqctl delete_queue "+t.EventsQueue()+") unless a ledger elsewhere reads it",
			"queue", t.EventsQueue(), "messages", q.Messages)
	}
}
