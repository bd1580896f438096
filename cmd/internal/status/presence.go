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
	if err := link.WaitConnected(ctx); err != nil {
		return fmt.Errorf("MQTT broker unreachable at %s: %w; start it: bash deploy/brokers.sh", contracts.RedactURL(g.cfg.MQTT.URL), err)
	}
	var lmu sync.Mutex
	seen := map[string]bool{}
	if err := link.Subscribe(ctx, contracts.PresenceFilter, 1, func(topic string, payload []byte) {
		id, ok := contracts.ParsePresenceTopic(topic)
		if !ok {
			return
		}
		if !glob(g.cfg.DevicePattern, id) {
			return
		}
		online, err := contracts.ParsePresence(payload)
		lmu.Lock()
		defer lmu.Unlock()
		if errors.Is(err, contracts.ErrPresenceCleared) {
			delete(seen, id)
			return
		}
		seen[id] = err == nil && online
	}); err != nil {
		return fmt.Errorf("read presence on %s: %w", contracts.RedactURL(g.cfg.MQTT.URL), err)
	}
	if err := link.Sync(ctx); err != nil {
		return fmt.Errorf("read presence on %s: %w", contracts.RedactURL(g.cfg.MQTT.URL), err)
	}
	lmu.Lock()
	d := &Devices{Known: len(seen), Source: "retained presence on MQTT"}
	for _, on := range seen {
		if on {
			d.Online++
		}
	}
	lmu.Unlock()
	mu.Lock()
	s.Devices = d
	mu.Unlock()
	return nil
}

func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}
