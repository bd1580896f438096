package mqttlink

import (
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// routes hands each incoming message to the handlers whose filters match
// its topic. paho has a router of its own (AddRoute), but it splits the
// filter and the topic into new slices for every route and every message
// (strings.Split in routeIncludesTopic): on a barista, four of every
// hundred allocations. This one compares the levels in place. paho still
// runs the handlers as it would its own: routes.dispatch is its default
// publish handler, called in paho's delivery goroutine, and paho acks the
// message when it returns.
type routes struct {
	mu     sync.RWMutex
	routes []route
	none   func(topic string) // a message no filter matched
}

type route struct {
	filter string
	h      Handler
}

// add routes messages matching filter to h; a filter added again gets
// the new handler (as paho's AddRoute does). The list is replaced, never
// changed in place, so dispatch reads it without holding the lock while
// the handlers run (a handler may Subscribe).
func (r *routes) add(filter string, h Handler) {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := make([]route, 0, len(r.routes)+1)
	for _, rt := range r.routes {
		if rt.filter != filter {
			next = append(next, rt)
		}
	}
	r.routes = append(next, route{filter, h})
}

// dispatch is paho's default publish handler.
func (r *routes) dispatch(_ paho.Client, m paho.Message) {
	r.mu.RLock()
	list := r.routes
	r.mu.RUnlock()
	topic := m.Topic()
	matched := false
	for _, rt := range list {
		if matchFilter(rt.filter, topic) {
			matched = true
			rt.h(topic, m.Payload())
		}
	}
	if !matched && r.none != nil {
		r.none(topic)
	}
}

// matchFilter reports whether topic matches the MQTT topic filter: "+"
// matches one level, a final "#" any number of levels, its parent's
// included ("a/#" matches "a"); a shared subscription's "$share/{group}/"
// is not part of what it matches (as in paho's router).
func matchFilter(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	for {
		f, fRest, fMore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, tRest, tMore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		switch {
		case !fMore:
			return !tMore
		case !tMore:
			return fRest == "#"
		}
		filter, topic = fRest, tRest
	}
}
