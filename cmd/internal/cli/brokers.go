package cli

import (
	"net/url"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/linktls"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
	"cafe/contracts/records"
)

// Brokers holds where the brokers are and the topology every service must
// agree on (RabbitMQ refuses to redeclare a queue with other arguments, so
// all services of one pipeline need the same values).
type Brokers struct {
	AMQPURL     string
	MQTTURL     string
	AMQPTLS     linktls.Files // for amqps:// URLs
	MQTTTLS     linktls.Files // for ssl:// URLs
	PostgresURL string        // the ledger's database (the ledger writes it, the cashier reads it)
	topology    contracts.Topology
}

// BrokersOf is the Brokers of the given URLs and topology, for tests and
// tools that do not read flags.
func BrokersOf(amqpURL, mqttURL string, top contracts.Topology) Brokers {
	return Brokers{AMQPURL: amqpURL, MQTTURL: mqttURL, topology: top}
}

// Register adds the flags of both brokers.
func (b *Brokers) Register(f Flags) {
	b.RegisterAMQP(f)
	b.RegisterMQTT(f)
}

// RegisterPostgres adds the ledger's database flag; cafe up, the cashier
// and the ledger register it once each.
func (b *Brokers) RegisterPostgres(f Flags) {
	if f.Has(records.SettingURL) {
		return
	}
	f.String(&b.PostgresURL, records.SettingURL, records.DefaultURL, "the ledger's PostgreSQL database (created if missing); the cashier reads it read-only (empty: no records, GET /v1/commands and /v1/results answer 503)")
}

// RegisterMQTT adds the MQTT broker flag.
func (b *Brokers) RegisterMQTT(f Flags) {
	f.String(&b.MQTTURL, mqttlink.SettingURL, mqttlink.DefaultURL, "MQTT broker URL (tcp://[user:password@]host:port, or ssl://host:8883 for TLS)")
	registerTLS(f, &b.MQTTTLS, mqttlink.SettingsTLS, "the MQTT broker", "ssl://")
}

// RegisterTLS adds the TLS files' flags of both links, for a tool that
// takes the brokers' URLs under flags of its own (cafe bench).
func RegisterTLS(f Flags, mqtt, amqp *linktls.Files) {
	registerTLS(f, mqtt, mqttlink.SettingsTLS, "the MQTT broker", "ssl://")
	registerTLS(f, amqp, amqplink.SettingsTLS, "RabbitMQ", "amqps://")
}

// registerTLS adds the flags of one link's TLS files.
func registerTLS(f Flags, t *linktls.Files, s linktls.Settings, broker, scheme string) {
	f.String(&t.CA, s.CA, "", "PEM file of the CA that signed the certificate of "+broker+", for "+scheme+" URLs (default: the system's trust store)")
	f.String(&t.Cert, s.Cert, "", "PEM client certificate to show "+broker+" (optional; with --"+s.Key.Flag+")")
	f.String(&t.Key, s.Key, "", "PEM private key of "+s.Cert.String())
}

// RegisterAMQP adds the RabbitMQ flags: where it is and the topology.
func (b *Brokers) RegisterAMQP(f Flags) {
	d := contracts.DefaultTopology()
	f.String(&b.AMQPURL, amqplink.SettingURL, amqplink.DefaultURL, "RabbitMQ URL (amqp://user:password@host:port/vhost, or amqps://host:5671/ for TLS); for a cluster, one per node, comma-separated: tried in turn on every (re)connect")
	registerTLS(f, &b.AMQPTLS, amqplink.SettingsTLS, "RabbitMQ", "amqps://")
	f.String(&b.topology.Prefix, contracts.SettingPrefix, d.Prefix, "prefix of every exchange and queue name; pipelines with different prefixes share a broker without meeting")
	f.Int(&b.topology.DeliveryLimit, contracts.SettingDeliveryLimit, d.DeliveryLimit, "deliveries of one message before it is dead-lettered (x-delivery-limit)")
	f.Int(&b.topology.CommandsMaxLength, contracts.SettingCommandsMaxLen, d.CommandsMaxLength, "commands queue capacity; when full the cashier answers 503 (0: no limit)")
	f.Int(&b.topology.ResultsMaxLength, contracts.SettingResultsMaxLen, d.ResultsMaxLength, "results queue capacity (0: no limit)")
	f.Int(&b.topology.EventsMaxLength, contracts.SettingEventsMaxLen, d.EventsMaxLength, "events queue capacity (the ledger's); at the limit the oldest events are dropped (0: no limit)")
}

// Topology is the AMQP topology these settings describe.
func (b Brokers) Topology() contracts.Topology { return b.topology }

// Unrecorded marks the topology as having no ledger (see
// contracts.Topology.Unrecorded): for cafe up --ledgers 0.
func (b *Brokers) Unrecorded() { b.topology.Unrecorded = true }

// AMQP is the configuration of a RabbitMQ link of role, named name (as
// RabbitMQ shows it), to these brokers (see WithRole for its credentials).
func (b Brokers) AMQP(role identity.Service, name string) amqplink.Config {
	return amqplink.Config{URL: AMQPWithRole(b.AMQPURL, role), Topology: b.topology, Name: name, Passive: role != identity.Admin, TLS: b.AMQPTLS}
}

// MQTT is the configuration of an MQTT link of role with client id
// clientID to these brokers (see WithRole for its credentials).
func (b Brokers) MQTT(role identity.Service, clientID string) mqttlink.Config {
	return mqttlink.Config{URL: WithRole(b.MQTTURL, mqttlink.DefaultURL, role), ClientID: clientID, TLS: b.MQTTTLS}
}

// AMQPWithRole is an AMQP URL setting (one URL, or a cluster's list) with
// role's credentials filled in on each URL as WithRole does.
func AMQPWithRole(raw string, role identity.Service) string {
	return amqplink.MapURLs(raw, func(u string) string { return WithRole(u, amqplink.DefaultURL, role) })
}

// WithRole is raw with role's credentials filled in, when raw has none of
// its own (no user name, or the user name of the built-in default URL,
// guest) and this machine's auth key can be read ($CAFE_AUTH_KEY_FILE, by
// default in $CAFE_CONFIG_DIR): on the one machine `task up` set up, every
// service logs in as its role without being told how. In a deployment each
// service is given its own credentials in its URL (cafe credentials ROLE),
// and no key.
func WithRole(raw, builtin string, role identity.Service) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // Validate says what is wrong with it
	}
	def, _ := url.Parse(builtin)
	if u.User != nil && (def.User == nil || u.User.Username() != def.User.Username()) {
		return raw
	}
	key, err := local.ReadKey()
	if err != nil {
		return raw
	}
	u.User = url.UserPassword(string(role), key.ServicePassword(role))
	return u.String()
}
