package barista

import (
	"log/slog"
	"sync"

	"cafe/contracts"
)

// Replies routes device replies to the commands waiting for them. Each
// barista subscribes to devices/+/replies/{its route}/+ only, so it sees
// only the replies meant for it; the last level, the command id, finds the
// waiting command.
type Replies struct {
	route string
	log   *slog.Logger
	stray func(reason string) // counts a reply nobody waits for, by reason

	mu      sync.Mutex
	pending map[string]*pendingReply
}

type pendingReply struct {
	deviceID string
	ch       chan []byte // buffered 1: the first reply wins, repeats are dropped
}

// NewReplies returns the router for route. stray, if not nil, is called
// with a short reason for every reply that is dropped.
func NewReplies(route string, log *slog.Logger, stray func(reason string)) *Replies {
	if stray == nil {
		stray = func(string) {}
	}
	return &Replies{route: route, log: log, stray: stray, pending: map[string]*pendingReply{}}
}

// Expect registers a command waiting for its reply; done must be called
// when it stops waiting.
func (r *Replies) Expect(commandID, deviceID string) (reply <-chan []byte, done func()) {
	p := &pendingReply{deviceID: deviceID, ch: make(chan []byte, 1)}
	r.mu.Lock()
	r.pending[commandID] = p
	r.mu.Unlock()
	return p.ch, func() {
		r.mu.Lock()
		if r.pending[commandID] == p {
			delete(r.pending, commandID)
		}
		r.mu.Unlock()
	}
}

// Waiting is the number of commands waiting for a reply.
func (r *Replies) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// OnMessage is the MQTT handler for this barista's reply topics. It never
// blocks: a reply that finds no waiting command, or comes from another
// device than the command's, is counted and dropped.
func (r *Replies) OnMessage(topic string, payload []byte) {
	deviceID, route, key, ok := contracts.ParseReplyTopic(topic)
	if !ok || route != r.route {
		r.stray("bad_topic")
		r.log.Debug("reply on a malformed topic", "topic", contracts.Clip(topic))
		return
	}
	r.mu.Lock()
	p := r.pending[key]
	r.mu.Unlock()
	switch {
	case p == nil:
		r.stray("unknown_key") // late (after the deadline), repeated, or made up
		r.log.Debug("reply for no waiting command", "device_id", deviceID, "key", key)
	case p.deviceID != deviceID:
		r.stray("wrong_device")
		r.log.Warn("reply from another device than the command's; dropped", "device_id", deviceID, "want_device_id", p.deviceID)
	default:
		select {
		case p.ch <- payload:
		default:
			r.stray("repeat")
		}
	}
}
