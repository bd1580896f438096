// Command caller runs one of cafe's callers: it consumes the results queue
// and delivers each result to its app over MQTT, on clients/{clientID}/results.
// See package cafe/caller.
package main

import (
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
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
	var settings run.CallerSettings
	var ops run.OpsSettings
	return run.Binary{
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
		Register: func(f cli.Flags) { settings.Register(f); ops.Register(f) },
		Pipeline: func(b cli.Brokers, prom *prometheus.Registry, log *slog.Logger) (*run.Pipeline, error) {
			svc, err := run.NewCaller(b, settings, prom, log)
			if err != nil {
				return nil, err
			}
			return run.Worker(ops, prom, log, svc)
		},
	}.Command()
}
