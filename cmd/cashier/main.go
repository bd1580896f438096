// Command cashier runs cafe's cashier: the HTTP API that takes device
// commands from apps and queues them in RabbitMQ. See package cafe/cashier.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
)

func main() {
	if err := command().Execute(); err != nil {
		os.Exit(1)
	}
}

func command() *cobra.Command {
	var (
		brokers  cli.Brokers
		settings run.CashierSettings
		logging  cli.Log
	)
	cmd := &cobra.Command{
		Use:   "cashier",
		Short: "Take device commands over HTTP and queue them in RabbitMQ",
		Long: `cashier serves POST /v1/devices/{deviceID}/commands. It authenticates the app
(Authorization: Bearer <token>, checked against CAFE_CLIENTS_FILE), validates
the JSON-RPC 2.0 request or batch, publishes each request to RabbitMQ with
publisher confirms, and answers 202 only once RabbitMQ has confirmed them.
It never waits for a device; results reach the app over MQTT on
clients/{clientID}/results.

Also served: /healthz, /readyz (503 while RabbitMQ is unreachable or while
shutting down), /metrics. SIGHUP reloads the client registry; SIGTERM drains.`,
		Example: `  CAFE_CLIENTS_FILE=clients.yaml cashier
  cashier --http-addr :9090 --clients-file clients.yaml --default-timeout 10s`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			svc, err := run.NewCashier(brokers, settings, run.NewRegistry(), log)
			if err != nil {
				return err
			}
			ctx, stop := cli.SignalContext()
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						if err := svc.Reload(); err != nil {
							log.Error("client registry not reloaded; keeping the old one", "err", err)
						}
					}
				}
			}()
			return svc.Run(ctx)
		},
	}
	f := cli.On(cmd.Flags())
	brokers.RegisterAMQP(f)
	settings.Register(f)
	logging.Register(f)
	return cmd
}
