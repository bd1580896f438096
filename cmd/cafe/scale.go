package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
	"cafe/cmd/internal/scale"
)

const scaleLong = `scale runs baristas (or, with --role caller, callers) as child processes and
keeps their number between --min and --max from what their queue says: the
commands queue for baristas, the results queue for callers.

Every --interval it reads the queue: ready messages over AMQP (a passive
declare, as cafe-ops) and, when RabbitMQ's management API answers
(--management-url), the unacknowledged count and the rates in and out. It
scales up at once when the backlog (ready + unacked) would not drain within
--target-drain at the current rates, or the oldest waiting message (an
estimate: ready / rate in) is older than that; it scales down one worker at a
time, only after --quiet without a change or pressure, by SIGTERM: the worker
finishes what it holds within its grace (CAFE_BARISTA_GRACE) or hands it back
to the queue. A worker that dies is replaced at once. Every change is logged
with its reason; /metrics on --http-addr exports cafe_scale_desired,
cafe_scale_running, cafe_scale_backlog, cafe_scale_drain_seconds.

The workers get this environment, the broker settings given here, a route of
their own (CAFE_BARISTA_ROUTE) and a free ops port each.

Exit status: 0 stopped by Ctrl-C or SIGTERM, 2 bad flags or RabbitMQ
unreachable.`

func scaleCommand() *cobra.Command {
	var (
		brokers  cli.Brokers
		settings scale.Settings
		opsSet   run.OpsSettings
		logging  cli.Log
	)
	cmd := &cobra.Command{
		Use:   "scale",
		Short: "Run baristas (or callers) as child processes, as many as their queue needs",
		Long:  scaleLong,
		Example: `  cafe scale --min 1 --max 8
  cafe scale --role caller --max 3 --quiet 1m
  cafe scale --max 4 --target-drain 5s --http-addr 127.0.0.1:9300   # metrics there`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			prom := run.NewRegistry()
			l, err := settings.Build(brokers, prom, log.With("role", "scale"))
			if err != nil {
				return err
			}
			o, err := run.NewOps(opsSet, prom, func() error { return nil }, log.With("role", "scale"))
			if err != nil {
				return err
			}
			ctx, stop := cli.SignalContext()
			defer stop()
			octx, stopOps := context.WithCancel(context.Background())
			opsDone := make(chan struct{})
			go func() { defer close(opsDone); _ = o.Run(octx) }()
			err = l.Run(ctx) // metrics stay up until every worker has stopped
			stopOps()
			<-opsDone
			return err
		},
	}
	f := cli.On(cmd.Flags())
	brokers.Register(f)
	settings.Register(f, true)
	opsSet.Register(f)
	logging.Register(f)
	return cmd
}
