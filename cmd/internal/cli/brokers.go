package cli

import (
	"cafe/contracts"
)

// Brokers holds where the brokers are and the topology every service must
// agree on (RabbitMQ refuses to redeclare a queue with other arguments, so
// all services of one pipeline need the same values).
type Brokers struct {
	AMQPURL          string
	MQTTURL          string
	Prefix           string
	DeliveryLimit    int
	CommandsMaxLen   int
	ResultsMaxLength int
}

// Register adds the flags of both brokers.
func (b *Brokers) Register(f Flags) {
	b.RegisterAMQP(f)
	b.RegisterMQTT(f)
}

// RegisterMQTT adds the MQTT broker flag.
func (b *Brokers) RegisterMQTT(f Flags) {
	f.String(&b.MQTTURL, "mqtt-url", "CAFE_MQTT_URL", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://[user:password@]host:port)")
}

// RegisterAMQP adds the RabbitMQ flags: where it is and the topology.
func (b *Brokers) RegisterAMQP(f Flags) {
	f.String(&b.AMQPURL, "amqp-url", "CAFE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL (amqp://user:password@host:port/vhost)")
	f.String(&b.Prefix, "amqp-prefix", "CAFE_AMQP_PREFIX", contracts.DefaultPrefix, "prefix of every exchange and queue name; pipelines with different prefixes share a broker without meeting")
	f.Int(&b.DeliveryLimit, "delivery-limit", "CAFE_DELIVERY_LIMIT", contracts.DefaultDeliveryLimit, "deliveries of one message before it is dead-lettered (x-delivery-limit)")
	f.Int(&b.CommandsMaxLen, "queue-max-length", "CAFE_QUEUE_MAX_LENGTH", contracts.DefaultCommandsMaxLength, "commands queue capacity; when full the cashier answers 503 (0: no limit)")
	f.Int(&b.ResultsMaxLength, "results-max-length", "CAFE_RESULTS_MAX_LENGTH", contracts.DefaultResultsMaxLength, "results queue capacity (0: no limit)")
}

// Topology is the AMQP topology these settings describe.
func (b Brokers) Topology() contracts.Topology {
	return contracts.Topology{
		Prefix:            b.Prefix,
		DeliveryLimit:     b.DeliveryLimit,
		CommandsMaxLength: b.CommandsMaxLen,
		ResultsMaxLength:  b.ResultsMaxLength,
	}
}
