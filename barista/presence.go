package barista

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	"cafe/contracts"
)

// Presence is what the barista knows of devices' liveness, from their
// retained presence messages (devices/+/presence). A device that never
// announced itself is unknown, not offline: the command is tried and, if
// nobody answers, ends as a device timeout.
type Presence struct {
	log     *slog.Logger
	invalid func() // counts a presence payload that could not be read

	mu     sync.RWMutex
	online map[string]bool
}

// NewPresence returns an empty table; invalid is called for every presence
// message that is not a valid presence payload (it may be nil).
func NewPresence(log *slog.Logger, invalid func()) *Presence {
	if invalid == nil {
		invalid = func() {}
	}
	return &Presence{log: log, invalid: invalid, online: map[string]bool{}}
}

// Offline reports whether the device's last presence said it is offline.
func (p *Presence) Offline(deviceID string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	online, known := p.online[deviceID]
	return known && !online
}

// Len is the number of devices whose presence is known.
func (p *Presence) Len() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.online)
}

// OnMessage is the MQTT handler for devices/+/presence. A payload that is
// not valid presence leaves what was known unchanged and is counted; an
// empty (cleared) retained message makes the device unknown again.
func (p *Presence) OnMessage(topic string, payload []byte) {
	deviceID, ok := contracts.ParsePresenceTopic(topic)
	if !ok {
		p.invalid()
		p.log.Debug("presence on a topic that names no valid device", "topic", contracts.Clip(topic))
		return
	}
	online, err := contracts.ParsePresence(payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case errors.Is(err, contracts.ErrPresenceCleared):
		delete(p.online, deviceID)
	case err != nil:
		p.invalid()
		p.log.Warn("ignoring invalid presence payload", "device_id", deviceID, "err", err, "bytes", len(payload))
	default:
		p.online[deviceID] = online
	}
}

// CheckPresence fails a command for a device known to be offline with
// CodeDeviceOffline at once, without sending it.
func CheckPresence(p *Presence) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			if p.Offline(cmd.Meta.DeviceID) {
				return fail(cmd, contracts.CodeDeviceOffline, "the device's presence says it is offline; the command was not sent"), nil
			}
			return next(ctx, cmd)
		}
	}
}
