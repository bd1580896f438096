// Command cashier runs cafe's cashier: the HTTP API that takes device
// commands from apps and queues them in RabbitMQ. See package cafe/cashier.
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
	var settings run.CashierSettings
	return run.Binary{
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
		AMQPOnly: true,
		Register: settings.Register,
		Pipeline: func(b cli.Brokers, prom *prometheus.Registry, log *slog.Logger) (*run.Pipeline, error) {
			svc, err := run.NewCashier(b, settings, prom, log)
			if err != nil {
				return nil, err
			}
			return &run.Pipeline{Cashier: svc}, nil
		},
	}.Command()
}
