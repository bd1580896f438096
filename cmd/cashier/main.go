// Command cashier runs cafe's cashier: the HTTP API that takes device
// commands from apps and queues them in RabbitMQ. See package cafe/cashier.
package main

import "cafe/cmd/internal/run"

func main() { run.Main(run.CashierCommand()) }
