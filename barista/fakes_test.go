package barista_test

import (
	"cafe/barista"
	"cafe/contracts"
	"cafe/contracts/mqttlink"
	"context"
	"strings"
	"sync"
)

// Stand-ins of the barista's MQTT side, for its policy tests and benchmarks.
// scriptedMQTT plays the MQTT broker and one device: a command is answered
// with reply (if not nil) on the calling goroutine; publish, if set,
// decides what Publish returns.
type scriptedMQTT struct {
	reply   []byte
	publish func(ctx context.Context, m mqttlink.Message) error

	mu      sync.Mutex
	replies mqttlink.Handler
}

var _ barista.MQTT = (*scriptedMQTT)(nil)

func (m *scriptedMQTT) Subscribe(_ context.Context, filter string, _ byte, h mqttlink.Handler) error {
	if strings.Contains(filter, "/"+contracts.LevelReplies+"/") {
		m.mu.Lock()
		m.replies = h
		m.mu.Unlock()
	}
	return nil
}
func (m *scriptedMQTT) WaitReady(context.Context) error { return nil }
func (m *scriptedMQTT) Lost() <-chan struct{}           { return nil }

func (m *scriptedMQTT) Publish(ctx context.Context, msg mqttlink.Message) error {
	m.mu.Lock()
	h := m.replies
	m.mu.Unlock()
	if m.publish != nil {
		if err := m.publish(ctx, msg); err != nil {
			return err
		}
	}
	if topic, ok := contracts.ReplyTopicFor(msg.Topic); ok && m.reply != nil && h != nil {
		h(topic, m.reply)
	}
	return nil
}
