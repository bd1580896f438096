package deadletter

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzLetterOf: whatever a dead letter's body and headers hold, reading
// it never panics and never shows more than MaxBodyShown.
func FuzzLetterOf(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","method":"on","id":1}`), "app-1")
	f.Add([]byte(`[{"method":"a"},{"method":"b"}]`), "")
	f.Add([]byte("\xff\x00"), "x")
	f.Fuzz(func(t *testing.T, body []byte, client string) {
		l := letterOf(amqp.Delivery{Body: body, Headers: amqp.Table{"cafe-client-id": client, "x-death": []any{amqp.Table{"reason": client}}}})
		if len(l.Body) > MaxBodyShown || l.BodyBytes != len(body) {
			t.Fatalf("body shown %d of %d", len(l.Body), len(body))
		}
	})
}
