package run

import (
	"os"

	"github.com/spf13/cobra"
)

// The one-role binaries' commands: cmd/cashier, cmd/barista and cmd/caller
// are each just Main of one of these.

// Main sets the services' GOGC (SetGC), runs cmd and exits 1 if it fails
// (cobra has printed the error).
func Main(cmd *cobra.Command) {
	SetGC()
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}

// CashierCommand is the command of cmd/cashier.
func CashierCommand() *cobra.Command {
	return Binary{
		Cashier: &CashierSettings{},
		Use:     "cashier",
		Short:   "Take device commands over HTTP and queue them in RabbitMQ",
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
	}.Command()
}

// BaristaCommand is the command of cmd/barista.
func BaristaCommand() *cobra.Command {
	return Binary{
		Barista: &BaristaSettings{},
		Use:     "barista",
		Short:   "Take commands from RabbitMQ, act on devices over MQTT, publish results",
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
	}.Command()
}

// CallerCommand is the command of cmd/caller.
func CallerCommand() *cobra.Command {
	return Binary{
		Caller: &CallerSettings{},
		Use:    "caller",
		Short:  "Deliver results from RabbitMQ to apps over MQTT",
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
	}.Command()
}

// LedgerCommand is the command of cmd/ledger.
func LedgerCommand() *cobra.Command {
	return Binary{
		Ledger: &LedgerSettings{},
		Use:    "ledger",
		Short:  "Record every command's status history and result in PostgreSQL",
		Long: `ledger consumes the events queue (copies of every command, result and dead
letter, the barista's "sent", the caller's "delivered" and the cashier's
"refused" events) and writes them to PostgreSQL (CAFE_POSTGRES_URL) in
batches, acking each event only once its batch has committed: with
PostgreSQL down the events wait in RabbitMQ and the ledger catches up when
it returns (a write that does not commit within 30 s is given up and tried
again every second). It creates the database if missing and migrates the
schema at start, and removes commands whose first event is older than
--ledger-retention in the background. The cashier serves what it wrote
(GET /v1/commands/{id}, GET /v1/results).

Any number of ledgers run side by side. /healthz, /readyz and /metrics listen
on CAFE_HTTP_ADDR (default: a free port, logged at start). SIGTERM: write the
batch in hand, hand the rest back.`,
		Example: `  ledger
  CAFE_POSTGRES_URL=postgres://ledger@db:5432/cafe ledger --ledger-retention 72h`,
	}.Command()
}
