package tier

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"cafe/contracts"
	"cafe/contracts/mqttlink"
)

// BridgeStateFilter is where the core says which edges' bridges are
// connected: cafe/bridges/{edge} is "1" while connected and "0" once gone
// (bridge.conf's notification_topic, and the bridge's last will).
const BridgeStateFilter = "cafe/bridges/+"

// offline is the presence the janitor publishes for a device its edge took
// down with it: what the device's own last will would have said.
var offline = []byte(`{"online":false}`)

// Janitor keeps the core's retained presence true when an edge vanishes.
// An edge that crashes publishes none of its devices' last wills, so the
// core would go on saying they are online and every command for them would
// wait for its deadline (device timeout) instead of failing fast (device
// offline). The janitor watches each edge's presence on the edge itself
// and the bridges' state on the core; when an edge's bridge goes down, it
// publishes {"online":false}, retained, on the core for each device that
// edge last said was online and that no other edge says is online. A
// device that comes back (on any edge) says online again itself.
type Janitor struct {
	Core  *mqttlink.Link            // logged in as cafe-admin on the core
	Edges map[string]*mqttlink.Link // cafe-admin on each edge, by the edge's name
	Log   *slog.Logger

	mu     sync.Mutex
	online map[string]map[string]bool // edge → device → online, as the edge last said
	down   chan string                // edges whose bridge went down
}

// Run subscribes and sweeps until ctx is done. The links are run by the
// caller.
func (j *Janitor) Run(ctx context.Context) error {
	j.mu.Lock()
	j.online = map[string]map[string]bool{}
	for name := range j.Edges {
		j.online[name] = map[string]bool{}
	}
	j.mu.Unlock()
	j.down = make(chan string, 64)
	for name, link := range j.Edges {
		if err := link.Subscribe(ctx, contracts.PresenceFilter, 1, j.onPresence(name)); err != nil {
			return err
		}
	}
	if err := j.Core.Subscribe(ctx, BridgeStateFilter, 1, j.onBridge); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case edge := <-j.down:
			j.sweep(ctx, edge)
		}
	}
}

func (j *Janitor) onPresence(edge string) mqttlink.Handler {
	return func(topic string, payload []byte) {
		device, ok := contracts.ParsePresenceTopic(topic)
		if !ok {
			return
		}
		online, err := contracts.ParsePresence(payload)
		if err != nil && len(payload) > 0 {
			return // malformed: the barista counts it; nothing to learn
		}
		j.mu.Lock()
		j.online[edge][device] = online
		j.mu.Unlock()
	}
}

func (j *Janitor) onBridge(topic string, payload []byte) {
	edge := strings.TrimPrefix(topic, "cafe/bridges/")
	if string(payload) != "0" || j.Edges[edge] == nil {
		return
	}
	select {
	case j.down <- edge:
	default:
		j.Log.Warn("edges going down faster than the janitor sweeps; one sweep skipped", "edge", edge)
	}
}

// sweep marks offline on the core the devices edge took down with it.
func (j *Janitor) sweep(ctx context.Context, edge string) {
	gone := j.orphans(edge)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, device := range gone {
		err := j.Core.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(device), Payload: offline, QoS: 1, Retained: true})
		if err != nil {
			j.Log.Error("a device of a lost edge still looks online on the core", "edge", edge, "device_id", device, "err", err)
			return
		}
	}
	j.Log.Info("edge lost: its devices marked offline on the core", "edge", edge, "devices", len(gone))
}

// orphans are the devices edge said were online and no other edge does;
// they count as offline on edge from now on.
func (j *Janitor) orphans(edge string) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for device, online := range j.online[edge] {
		if !online || j.onlineElsewhere(edge, device) {
			continue
		}
		out = append(out, device)
		j.online[edge][device] = false
	}
	return out
}

func (j *Janitor) onlineElsewhere(edge, device string) bool {
	for other, devices := range j.online {
		if other != edge && devices[device] {
			return true
		}
	}
	return false
}

// Online reports whether edge last said device is online (for tests and
// status).
func (j *Janitor) Online(edge, device string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.online[edge] != nil && j.online[edge][device]
}

// RunJanitor connects to the core and each edge with the configurations
// given (each must log in as cafe-admin) and runs a Janitor on them until
// ctx is done.
func RunJanitor(ctx context.Context, core mqttlink.Config, edges map[string]mqttlink.Config, log *slog.Logger) error {
	j := &Janitor{Edges: map[string]*mqttlink.Link{}, Log: log}
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	link := func(cfg mqttlink.Config, name string) (*mqttlink.Link, error) {
		l, err := mqttlink.New(cfg, log.With("broker", name))
		if err != nil {
			return nil, err
		}
		stops = append(stops, l.Background())
		return l, nil
	}
	var err error
	if j.Core, err = link(core, "core"); err != nil {
		return err
	}
	for name, cfg := range edges {
		if j.Edges[name], err = link(cfg, name); err != nil {
			return err
		}
	}
	return j.Run(ctx)
}
