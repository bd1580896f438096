package caller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/caller"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// BenchmarkDeliver runs the caller's whole per-result path without brokers:
// decode the headers, check the body, publish it to the app's results
// topic (a fake broker that acknowledges at once), ack. It runs only on
// demand:
//
//	go test -run '^$' -bench . -benchmem ./caller/
func BenchmarkDeliver(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + strings.Repeat("x", 110) + `"}}`)
	headers := contracts.ResultMeta{ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"3fa9c1.1.42"`,
		AcceptedAt: time.Now(), Outcome: contracts.OutcomeReply}.Headers()
	top := contracts.DefaultTopology()
	results := brokertest.NewFeed(top.ResultsQueue(), b.N, func(int) *amqp.Delivery {
		return &amqp.Delivery{MessageId: contracts.NewCommandID(), Headers: headers, Body: body}
	})
	c, err := caller.New(caller.Config{}, top, caller.Links{Results: results, MQTT: acceptAll{}}, prometheus.NewRegistry(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if err := results.Drive(context.Background(), c.Run); err != nil {
		b.Fatal(err)
	}
}

// acceptAll is an MQTT broker that acknowledges every publish at once.
type acceptAll struct{ brokertest.Open }

var _ caller.MQTT = acceptAll{}

func (acceptAll) WaitConnected(context.Context) error             { return nil }
func (acceptAll) Publish(context.Context, mqttlink.Message) error { return nil }
