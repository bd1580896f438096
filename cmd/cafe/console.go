package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/console"
	"cafe/cmd/internal/run"
	"cafe/contracts/local"
)

func consoleCommand() *cobra.Command {
	var (
		s        console.Settings
		brokers  cli.Brokers
		logging  cli.Log
		registry string
	)
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Serve the web console: pipeline, devices, dead letters and clients, live",
		Long: `console serves cafe's web console on CAFE_CONSOLE_ADDR (127.0.0.1:8081): the
queues with their rates and consumers, baristas and callers, a live chart of
commands/s and p99 latency, the devices with their presence (searchable), dead
letters (list, show, replay with a dry run, purge) and the registry's clients.

Only operators log in: add one with ` + "`cafe operators add --id NAME`" + ` and log in
with the token it prints. The console reads RabbitMQ (its management API and
the dead-letter queue) and MQTT presence as cafe-ops. ` + "`cafe up`" + ` serves it too.`,
		Example: `  cafe operators add --id alice
  cafe console
  CAFE_CONSOLE_ADDR=127.0.0.1:9000 cafe console`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			srv, parts, err := s.Build(brokers, registry, nil, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cafe console: %s (log in with an operator token: cafe operators add --id NAME)\n", srv.URL())
			ctx, stop := cli.SignalContext()
			defer stop()
			return runAll(ctx, parts)
		},
	}
	f := cli.On(cmd.Flags())
	brokers.Register(f)
	dir, _ := local.Default()
	f.String(&registry, run.SettingClientsFile, dir.Registry(), "the registry: operators who may log in, clients and devices shown")
	s.Register(f)
	logging.Register(f)
	return cmd
}

// runAll runs parts until ctx is done or one of them fails.
func runAll(ctx context.Context, parts []func(context.Context) error) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range parts {
		g.Go(func() error { return p(ctx) })
	}
	return g.Wait()
}
