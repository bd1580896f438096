package barista

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"cafe/contracts"
)

// Breakers holds one gobreaker circuit breaker per device. Only transport
// failures count against a device: a device timeout, or a command the MQTT
// broker would not take. A reply, including the device's own error reply or
// a malformed one, proves the device link works and counts as a success;
// an expired command or one for an offline device never reaches the breaker.
type Breakers struct {
	cfg     BreakerConfig
	now     func() time.Time
	changed func(device string, to gobreaker.State)

	mu sync.Mutex
	m  map[string]*breakerEntry
}

type breakerEntry struct {
	cb       *gobreaker.CircuitBreaker[Result]
	lastUsed time.Time
}

// errTransport marks a result that counts as a failure of the device link.
var errTransport = errors.New("device link failure")

// errGiveBack marks a command handed back to the queue (shutdown): neither
// success nor failure for the device.
var errGiveBack = errors.New("handed back")

// NewBreakers returns an empty set; zero fields of cfg take their
// defaults. changed, if not nil, is told of every
// state change (for metrics and logs).
func NewBreakers(cfg BreakerConfig, now func() time.Time, changed func(device string, to gobreaker.State)) *Breakers {
	contracts.FillDefaults(&cfg, Defaults().Breaker)
	if changed == nil {
		changed = func(string, gobreaker.State) {}
	}
	return &Breakers{cfg: cfg, now: now, changed: changed, m: map[string]*breakerEntry{}}
}

func (b *Breakers) get(device string) *gobreaker.CircuitBreaker[Result] {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[device]
	if !ok {
		failures := uint32(b.cfg.Failures)
		e = &breakerEntry{cb: gobreaker.NewCircuitBreaker[Result](gobreaker.Settings{
			Name:        device,
			MaxRequests: 1,
			Timeout:     b.cfg.OpenFor,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsExcluded:  func(err error) bool { return errors.Is(err, errGiveBack) },
			OnStateChange: func(name string, _, to gobreaker.State) {
				b.changed(name, to)
			},
		})}
		b.m[device] = e
	}
	e.lastUsed = b.now()
	return e.cb
}

// State is the breaker state of a device (closed if it has none).
func (b *Breakers) State(device string) gobreaker.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.m[device]; ok {
		return e.cb.State()
	}
	return gobreaker.StateClosed
}

// Open is how many devices' breakers are not closed (open or half-open).
func (b *Breakers) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.m {
		if e.cb.State() != gobreaker.StateClosed {
			n++
		}
	}
	return n
}

// Sweep forgets closed breakers idle longer than IdleTTL, so memory follows
// the devices in use, not every device ever commanded. It returns how many
// are left.
func (b *Breakers) Sweep() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	cutoff := b.now().Add(-b.cfg.IdleTTL)
	for device, e := range b.m {
		if e.lastUsed.Before(cutoff) && e.cb.State() == gobreaker.StateClosed {
			delete(b.m, device)
		}
	}
	return len(b.m)
}

// Guard runs commands for a device through its breaker. While the breaker
// is open, commands fail at once with CodeDeviceUnreachable.
func Guard(b *Breakers) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			var handback error
			res, err := b.get(cmd.Meta.DeviceID).Execute(func() (Result, error) {
				res, err := next(ctx, cmd)
				switch {
				case err != nil:
					handback = err
					return res, errGiveBack
				case res.Outcome == contracts.OutcomeTimeout || res.Outcome == contracts.OutcomeUnreachable:
					return res, errTransport
				}
				return res, nil
			})
			switch {
			case handback != nil:
				return Result{}, handback
			case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
				return fail(cmd, contracts.CodeDeviceUnreachable,
					"circuit open: the last commands to this device failed; it is tried again after "+b.cfg.OpenFor.String()), nil
			}
			return res, nil // a transport failure is still a finished command with its error result
		}
	}
}
