// Command caller runs one of cafe's callers: it consumes the results queue
// and delivers each result to its app over MQTT, on clients/{clientID}/results.
// See package cafe/caller.
package main

import (
	"os"

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
		settings run.CallerSettings
		logging  cli.Log
		ops      run.OpsSettings
	)
	cmd := &cobra.Command{
		Use:   "caller",
		Short: "Deliver results from RabbitMQ to apps over MQTT",
		Long: `caller consumes the results queue and publishes each result at QoS 1 on
clients/{clientID}/results. It acks a result only once the MQTT broker has
acknowledged it; while the MQTT broker is down it holds results (up to
--wait-mqtt) rather than spending their delivery attempts.

Apps that want results sent while they were offline connect with a fixed
client id, clean session false, and a QoS 1 subscription to their topic.

/healthz, /readyz and /metrics listen on CAFE_HTTP_ADDR (default: a free port,
logged at start). SIGTERM: finish deliveries in hand, hand the rest back.`,
		Example: `  caller
  CAFE_HTTP_ADDR=:9102 caller --caller-concurrency 512`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			prom := run.NewRegistry()
			svc, err := run.NewCaller(brokers, settings, prom, log.With("role", "caller"))
			if err != nil {
				return err
			}
			return run.RunWorker(ops, prom, svc, log)
		},
	}
	f := cli.On(cmd.Flags())
	brokers.Register(f)
	settings.Register(f)
	ops.Register(f)
	logging.Register(f)
	return cmd
}
