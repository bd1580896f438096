// Command caller runs one of cafe's callers: it consumes the results queue
// and delivers each result to its app over MQTT, on clients/{clientID}/results.
// See package cafe/caller.
package main

import "cafe/cmd/internal/run"

func main() { run.Main(run.CallerCommand()) }
