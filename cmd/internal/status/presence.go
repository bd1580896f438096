package status

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sync"

	"cafe/contracts"
	"cafe/contracts/mqttlink"
)

// devices counts online devices from their retained presence: it
// subscribes to every device's presence topic on a link of its own, waits
// until the broker has delivered every retained message (mqttlink.Sync),
// and counts {"online": true}. This is the source of truth the baristas
// read too, and it needs no barista running; a barista's
// cafe_barista_devices_known only says what that one barista has seen.
func (g *Gatherer) devices(ctx context.Context, s *Snapshot, mu *sync.Mutex) error {
	link, err := mqttlink.New(g.cfg.MQTT, g.log)
	if err != nil {
		return err
	}
	stop := link.Background()
	defer stop()
	where := contracts.RedactURL(g.cfg.MQTT.URL)
	if err := link.WaitConnected(ctx); err != nil {
		return fmt.Errorf("MQTT broker unreachable at %s: %w; start it: bash deploy/brokers.sh", where, err)
	}
	p := &presence{pattern: g.cfg.DevicePattern, seen: map[string]bool{}}
	if err := link.Subscribe(ctx, contracts.PresenceFilter, 1, p.onMessage); err != nil {
		return fmt.Errorf("read presence on %s: %w", where, err)
	}
	if err := link.Sync(ctx); err != nil {
		return fmt.Errorf("read presence on %s: %w", where, err)
	}
	d := p.count()
	mu.Lock()
	s.Devices = d
	mu.Unlock()
	return nil
}

// presence collects retained presence messages: device id → online.
type presence struct {
	pattern string
	mu      sync.Mutex
	seen    map[string]bool
}

func (p *presence) onMessage(topic string, payload []byte) {
	id, ok := contracts.ParsePresenceTopic(topic)
	if !ok || !glob(p.pattern, id) {
		return
	}
	online, err := contracts.ParsePresence(payload)
	p.mu.Lock()
	defer p.mu.Unlock()
	if errors.Is(err, contracts.ErrPresenceCleared) {
		delete(p.seen, id)
		return
	}
	p.seen[id] = err == nil && online
}

func (p *presence) count() *Devices {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := &Devices{Known: len(p.seen), Source: "retained presence on MQTT"}
	for _, on := range p.seen {
		if on {
			d.Online++
		}
	}
	return d
}

func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}
