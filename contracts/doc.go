// Package contracts holds what every part of cafe, and every app and device
// outside it, must agree on: the JSON-RPC 2.0 envelope and its validation,
// the error codes the pipeline produces, the MQTT topics, the RabbitMQ
// exchange and queue names with their arguments, and the AMQP headers.
//
// Nothing here talks to a broker. Each rule is written once, next to the
// code that enforces it:
//
//   - ids.go: the charsets of device ids, client ids and MsgIDs; command ids.
//   - envelope.go: what a valid request or batch is (ParseBody, ParseRequest).
//   - reply.go: what a valid device reply and presence payload are.
//   - errors.go: the Code and Error types and every pipeline code.
//   - jsonrpc.go: building error responses around the app's raw id.
//   - topics.go: MQTT topic builders and parsers, and the levels after commands/.
//   - topology.go: exchanges, queues and their arguments; outcome.go: outcomes.
//   - meta.go, metapack.go: the AMQP headers of commands and results (one,
//     HeaderMeta, packs the client, device, times and msg id).
//
// The machine-readable forms of the public contracts are openapi.yaml (the
// cashier's HTTP API) and asyncapi.yaml (the MQTT channels) in this folder;
// the specs tests replay their examples against this package and the
// cashier, so they cannot drift from the code.
//
// Below this package, the parts every role uses to speak these contracts
// to the brokers: amqplink (a RabbitMQ link that survives restarts,
// confirmed publishing, gated consuming), mqttlink (an MQTT link that
// reconnects and renews its subscriptions), groupwrite (fewer system calls
// for both), and brokertest (test helpers on the real brokers).
package contracts
