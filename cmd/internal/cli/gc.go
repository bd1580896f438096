package cli

import (
	"os"
	"runtime/debug"
)

// SetGC sets the collector's target (GOGC) to percent unless GOGC is in
// the environment, which then wins as it does for any setting. Call it
// first thing in main.
func SetGC(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
