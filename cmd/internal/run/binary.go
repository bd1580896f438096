package run

import (
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
)

// Binary describes a one-role binary (cmd/cashier, cmd/barista,
// cmd/caller): its help, its own settings, and the pipeline it runs.
type Binary struct {
	Use, Short, Long, Example string
	// AMQPOnly: the role needs no MQTT broker (the cashier).
	AMQPOnly bool
	// Register adds the role's own flags (brokers and logging are added
	// for every binary).
	Register func(cli.Flags)
	// Pipeline builds what to run, once the flags and environment are read.
	Pipeline func(b cli.Brokers, prom *prometheus.Registry, log *slog.Logger) (*Pipeline, error)
}

// Command is the cobra command of b: read the settings, build the
// pipeline, run it until SIGINT or SIGTERM.
func (b Binary) Command() *cobra.Command {
	var (
		brokers cli.Brokers
		logging cli.Log
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
			p, err := b.Pipeline(brokers, NewRegistry(), log.With("role", b.Use))
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
	if b.AMQPOnly {
		brokers.RegisterAMQP(f)
	} else {
		brokers.Register(f)
	}
	b.Register(f)
	logging.Register(f)
	return cmd
}

// Worker is the pipeline of one barista or caller with its ops server.
func Worker(s OpsSettings, prom *prometheus.Registry, log *slog.Logger, r Role) (*Pipeline, error) {
	o, err := NewOps(s, prom, r.Ready, log)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{Ops: o}
	switch w := r.(type) {
	case *Barista:
		p.Baristas = []*Barista{w}
	case *Caller:
		p.Callers = []*Caller{w}
	}
	return p, nil
}
