package console

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"cafe/contracts"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
	"cafe/contracts/registry"
)

// Registry keeps the registry file as last loaded, reloading it when it
// changes; a file that stops being valid keeps the last good one (and logs).
type Registry struct {
	file string
	log  *slog.Logger
	cur  atomic.Pointer[registry.Registry]
	x    *Index
}

// LoadRegistry loads file and feeds its devices to x.
func LoadRegistry(file string, x *Index, log *slog.Logger) (*Registry, error) {
	r := &Registry{file: file, log: log, x: x}
	reg, err := registry.Load(file)
	if err != nil {
		return nil, err
	}
	r.store(reg)
	return r, nil
}

func (r *Registry) store(reg *registry.Registry) {
	r.cur.Store(reg)
	ids := make([]string, 0, len(reg.Devices()))
	for _, d := range reg.Devices() {
		ids = append(ids, d.ID)
	}
	r.x.SetRegistered(ids)
}

// Current is the registry as last loaded.
func (r *Registry) Current() *registry.Registry { return r.cur.Load() }

// Run reloads the registry when its file changes, until ctx is done.
func (r *Registry) Run(ctx context.Context) error {
	local.NewWatcher(r.file).Run(ctx, local.WatchInterval, func() {
		reg, err := registry.Load(r.file)
		if err != nil {
			r.log.Warn("registry not reloaded; keeping the last good one", "err", err)
			return
		}
		r.store(reg)
	})
	return nil
}

// Presence feeds x from the retained presence topics, over link.
type Presence struct {
	link  *mqttlink.Link
	x     *Index
	since atomic.Int64 // unix nanoseconds the link went down; 0: up
}

// NewPresence subscribes x to devices/+/presence on a link made from cfg
// (as cafe-ops: the ACL lets it read presence).
func NewPresence(cfg mqttlink.Config, x *Index, log *slog.Logger) (*Presence, error) {
	link, err := mqttlink.New(cfg, log)
	if err != nil {
		return nil, err
	}
	p := &Presence{link: link, x: x}
	p.since.Store(time.Now().UnixNano())
	if err := link.Subscribe(context.Background(), contracts.PresenceFilter, 1, x.OnPresence); err != nil {
		return nil, err
	}
	return p, nil
}

// Run keeps the link up until ctx is done.
func (p *Presence) Run(ctx context.Context) error {
	go p.watch(ctx)
	return p.link.Run(ctx)
}

// watch notes when the link goes down and comes back.
func (p *Presence) watch(ctx context.Context) {
	for {
		if p.link.WaitConnected(ctx) != nil {
			return
		}
		p.since.Store(0)
		select {
		case <-ctx.Done():
			return
		case <-p.link.Lost():
			p.since.Store(time.Now().UnixNano())
		}
	}
}

// State is the MQTT source's state.
func (p *Presence) State() SourceState {
	if at := p.since.Load(); at != 0 {
		return SourceState{Name: "MQTT", Since: time.Unix(0, at), Error: "device presence is not being updated"}
	}
	return SourceState{Name: "MQTT", Up: true}
}
