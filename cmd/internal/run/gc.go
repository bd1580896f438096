package run

import "cafe/cmd/internal/cli"

// gcPercent is the services' GOGC unless the environment sets one. Their
// live heap is a few MB, so at Go's 100 the collector runs at its 4 MB
// minimum target, about every 150 commands, and each cycle scans the
// stacks of every goroutine (hundreds in cafe up: 256 idle workers each
// for the barista's and the caller's consumers, and when measured the
// ledger's 512, since gone): about 7% of cafe up's CPU at 64 commands in
// flight. At 200: 6.1–7.6 → 2.7–3.3 cycles per 1000
// commands and 1–5 MiB more resident (README, "Where a command waits").
const gcPercent = 200

// SetGC sets the services' GOGC (gcPercent) unless GOGC is in the
// environment. Call it first thing in a service's main.
func SetGC() { cli.SetGC(gcPercent) }
