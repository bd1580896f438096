package mqttlink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// SyncTopicPrefix is where links publish their sync markers:
// cafe/sync/{client id}. Only the link itself subscribes to its own.
const SyncTopicPrefix = "cafe/sync/"

// syncer matches sync markers to the callers waiting for them.
type syncer struct {
	mu         sync.Mutex
	subscribed bool
	waiting    map[string]chan struct{}
}

// Sync returns once every message the broker queued for this client before
// the call has been handled. It publishes a marker to the link's own sync
// topic and waits for it to come back: the broker delivers a client's
// messages in order, and handlers run in order, so when the marker arrives,
// everything before it (such as the retained messages sent after a
// subscription was renewed) has been handled.
func (l *Link) Sync(ctx context.Context) error {
	topic := SyncTopicPrefix + l.cfg.ClientID
	l.sync.mu.Lock()
	if !l.sync.subscribed {
		// Made once; renewed with the others on every connection.
		if err := l.Subscribe(ctx, topic, 1, l.onSync); err != nil {
			l.sync.mu.Unlock()
			return fmt.Errorf("sync: %w", err)
		}
		l.sync.subscribed = true
		l.sync.waiting = map[string]chan struct{}{}
	}
	l.sync.mu.Unlock()
	var b [8]byte
	_, _ = rand.Read(b[:])
	marker := hex.EncodeToString(b[:])
	arrived := make(chan struct{})
	l.sync.mu.Lock()
	l.sync.waiting[marker] = arrived
	l.sync.mu.Unlock()
	defer func() {
		l.sync.mu.Lock()
		delete(l.sync.waiting, marker)
		l.sync.mu.Unlock()
	}()
	if err := l.Publish(ctx, Message{Topic: topic, Payload: []byte(marker), QoS: 1}); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	select {
	case <-arrived:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sync: %w", ctx.Err())
	}
}

func (l *Link) onSync(_ string, payload []byte) {
	l.sync.mu.Lock()
	defer l.sync.mu.Unlock()
	if ch, ok := l.sync.waiting[string(payload)]; ok {
		close(ch)
		delete(l.sync.waiting, string(payload))
	}
}

// WaitReady waits until the link is connected and everything the broker
// sent on connecting (retained messages of renewed subscriptions) has been
// handled. Consumers gate their work on it.
func (l *Link) WaitReady(ctx context.Context) error {
	for {
		if err := l.WaitConnected(ctx); err != nil {
			return err
		}
		err := l.Sync(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, ErrNotConnected) {
			continue // lost again meanwhile: wait for the next connection
		}
		return err
	}
}
