package run

import (
	"errors"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
)

// Binary describes a one-role binary (cmd/cashier, cmd/barista,
// cmd/caller): its help and which role it runs. Exactly one of Cashier,
// Barista and Caller is set; it holds that role's settings.
type Binary struct {
	Use, Short, Long, Example string

	Cashier *CashierSettings
	Barista *BaristaSettings
	Caller  *CallerSettings
	Ledger  *LedgerSettings
}

// Command is the cobra command of b: read the settings, build the
// pipeline, run it until SIGINT or SIGTERM.
func (b Binary) Command() *cobra.Command {
	var (
		brokers cli.Brokers
		logging cli.Log
		ops     OpsSettings
	)
	cmd := &cobra.Command{
		Use:          b.Use,
		Short:        b.Short,
		Long:         b.Long,
		Example:      b.Example,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			p, err := b.pipeline(brokers, ops, NewRegistry(), log.With("role", b.Use))
			if err != nil {
				return err
			}
			p.Log = log
			ctx, stop := cli.SignalContext()
			defer stop()
			return p.Run(ctx)
		},
	}
	f := cli.On(cmd.Flags())
	switch {
	case b.Cashier != nil:
		brokers.RegisterAMQP(f) // the cashier never talks MQTT
		brokers.RegisterPostgres(f)
		b.Cashier.Register(f) // and serves health and metrics on its API address
	case b.Barista != nil:
		brokers.Register(f)
		b.Barista.Register(f)
		ops.Register(f)
	case b.Caller != nil:
		brokers.Register(f)
		b.Caller.Register(f)
		ops.Register(f)
	case b.Ledger != nil:
		brokers.RegisterAMQP(f) // the ledger never talks MQTT
		brokers.RegisterPostgres(f)
		b.Ledger.Register(f)
		ops.Register(f)
	}
	logging.Register(f)
	return cmd
}

// pipeline is the one role of b, with an ops server for a worker.
func (b Binary) pipeline(brokers cli.Brokers, ops OpsSettings, prom *prometheus.Registry, log *slog.Logger) (*Pipeline, error) {
	p := &Pipeline{}
	var worker Role
	switch {
	case b.Cashier != nil:
		c, err := NewCashier(brokers, *b.Cashier, prom, log)
		if err != nil {
			return nil, err
		}
		p.Cashier = c
		return p, nil
	case b.Barista != nil:
		w, err := NewBarista(brokers, *b.Barista, prom, log)
		if err != nil {
			return nil, err
		}
		p.Baristas, worker = []*Barista{w}, w
	case b.Caller != nil:
		w, err := NewCaller(brokers, *b.Caller, prom, log)
		if err != nil {
			return nil, err
		}
		p.Callers, worker = []*Caller{w}, w
	case b.Ledger != nil:
		w, err := NewLedger(brokers, *b.Ledger, prom, log)
		if err != nil {
			return nil, err
		}
		p.Ledgers, worker = []*Ledger{w}, w
	default:
		return nil, errors.New("run.Binary names no role")
	}
	o, err := NewOps(ops, prom, worker.Ready, log)
	if err != nil {
		return nil, err
	}
	p.Ops = o
	return p, nil
}
