package cashier

import (
	"strconv"
	"time"

	"golang.org/x/time/rate"

	"cafe/contracts"
	"cafe/contracts/registry"
)

// directory is the registry as the cashier uses it: who a token belongs
// to, which devices exist, and each client's rate limiter. A new registry
// (SIGHUP) makes a new directory; a client whose rate did not change keeps
// its limiter, so a reload does not refill everyone's burst.
type directory struct {
	reg      *registry.Registry
	limiters map[string]*rate.Limiter // by client id; nil entry: no limit
}

func newDirectory(reg *registry.Registry, cfg Config, old *directory) *directory {
	d := &directory{reg: reg, limiters: make(map[string]*rate.Limiter, reg.Len())}
	for _, c := range reg.Clients() {
		r, burst := limits(c, cfg)
		if r == 0 {
			d.limiters[c.ID] = nil
			continue
		}
		if old != nil {
			if l := old.limiters[c.ID]; l != nil && float64(l.Limit()) == r && l.Burst() == burst {
				d.limiters[c.ID] = l
				continue
			}
		}
		d.limiters[c.ID] = rate.NewLimiter(rate.Limit(r), burst)
	}
	return d
}

// limits are the rate and burst of a client: its own, or the cashier's
// defaults (0: no limit).
func limits(c *registry.Client, cfg Config) (r float64, burst int) {
	r, burst = c.Rate, c.Burst
	if r == 0 {
		r, burst = cfg.ClientRate, cfg.ClientBurst
	}
	if r > 0 && burst == 0 {
		burst = max(1, int(r))
	}
	return r, burst
}

// allow takes n commands from client's rate at time now, or says why not
// with a CodeRateLimited error.
func (d *directory) allow(c *registry.Client, now time.Time, n int) *contracts.Error {
	l := d.limiters[c.ID]
	if l == nil {
		return nil
	}
	if burst := l.Burst(); n > burst {
		// No wait would help: the limiter never allows more than its burst at once.
		return contracts.NewError(contracts.CodeRateLimited, contracts.Detail{Field: "batch",
			Reason: "a batch of " + strconv.Itoa(n) + " is larger than client " + c.ID + "'s burst of " + strconv.Itoa(burst) +
				"; split it into batches of at most " + strconv.Itoa(burst)})
	}
	if !l.AllowN(now, n) {
		return contracts.NewError(contracts.CodeRateLimited,
			contracts.Detail{Reason: "client " + c.ID + " is over its rate; retry after the Retry-After delay"})
	}
	return nil
}
