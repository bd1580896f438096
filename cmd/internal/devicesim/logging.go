package devicesim

import (
	"log/slog"
	"sync"
	"time"
)

// reporter logs failed and lost connections without drowning the log: when
// an edge broker restarts, its 15,000 devices all lose their connection at
// once. It logs the first failure of a period with the number of failures
// of the period before.
type reporter struct {
	log   *slog.Logger
	every time.Duration

	mu         sync.Mutex
	next       time.Time
	suppressed int
}

func newReporter(log *slog.Logger, every time.Duration) *reporter {
	return &reporter{log: log, every: every}
}

func (r *reporter) report(err error) {
	r.mu.Lock()
	now := time.Now()
	if now.Before(r.next) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.next, r.suppressed = now.Add(r.every), 0
	r.mu.Unlock()
	r.log.Warn("mqtt connection failed or lost; reconnecting", "err", err, "more_since_last_report", suppressed)
}
