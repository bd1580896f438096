// Command barista runs one of cafe's baristas: a competing consumer of the
// commands queue that acts on devices over MQTT and publishes the results.
// Start as many as the queue needs; they need nothing configured but the
// brokers' URLs. See package cafe/barista.
package main

import "cafe/cmd/internal/run"

func main() { run.Main(run.BaristaCommand()) }
