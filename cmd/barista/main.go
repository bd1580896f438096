// Command barista runs one of cafe's baristas: a competing consumer of the
// commands queue that acts on devices over MQTT and publishes the results.
// Start as many as the queue needs; they need nothing configured but the
// brokers' URLs. See package cafe/barista.
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
	var settings run.BaristaSettings
	var ops run.OpsSettings
	return run.Binary{
		Use:   "barista",
		Short: "Take commands from RabbitMQ, act on devices over MQTT, publish results",
		Long: `barista consumes the commands queue (competing with every other barista),
sends each command to its device over MQTT, waits for the reply until the
command's deadline, and publishes the result (or a JSON-RPC error: expired,
device offline, device timeout, device unreachable, bad device reply) to the
results queue. It acks a command only once its result is confirmed.

Any number of baristas run side by side with nothing but the brokers' URLs:
each picks a random route for its MQTT topics and a free port for
/healthz, /readyz and /metrics (logged at start; set CAFE_HTTP_ADDR to fix it).
SIGTERM: stop taking commands, finish those in hand within --grace, hand the
rest back to the queue.`,
		Example: `  barista
  CAFE_AMQP_URL=amqp://cafe:secret@mq:5672/ CAFE_MQTT_URL=tcp://mqtt:1883 barista --concurrency 512`,
		Register: func(f cli.Flags) { settings.Register(f); ops.Register(f) },
		Pipeline: func(b cli.Brokers, prom *prometheus.Registry, log *slog.Logger) (*run.Pipeline, error) {
			svc, err := run.NewBarista(b, settings, prom, log)
			if err != nil {
				return nil, err
			}
			return run.Worker(ops, prom, log, svc)
		},
	}.Command()
}
