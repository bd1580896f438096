package run

import (
	"runtime/debug"
	"testing"
)

// SetGC sets the services' GOGC, unless the environment names one.
func TestSetGC(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{{"", gcPercent}, {"50", 100}, {"off", 100}} {
		t.Run("GOGC="+tc.env, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			prev := debug.SetGCPercent(100) // stands for whatever the runtime took from the environment
			SetGC()
			if got := debug.SetGCPercent(prev); got != tc.want {
				t.Errorf("GOGC %d after SetGC, want %d", got, tc.want)
			}
		})
	}
}
