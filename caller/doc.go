// Package caller delivers results to apps: the vibrating pager of the
// coffee shop. It consumes the results queue and publishes each result on
// clients/{clientID}/results at QoS 1, and acks the AMQP message only after
// the MQTT broker acknowledged the publish (PUBACK), so a result leaves
// RabbitMQ only once Mosquitto holds it.
//
// Consumes: the results queue (contracts.Topology.ResultsQueue), with manual
// acks; each message carries contracts.ResultMeta headers and a JSON-RPC
// response body.
//
// Produces: the body, unchanged, on clients/{clientID}/results, QoS 1, not
// retained.
//
// Ack policy (handle and notice turn each delivery into an amqplink.Verdict,
// which the consumer settles; nothing else here settles a result):
//
//   - no valid client id, or a body that is not a JSON object within the
//     size limit: Poison, to the dead-letter queue;
//   - the MQTT broker became unreachable after the result was taken: wait
//     for it, up to Config.WaitMQTT, holding the message (far below
//     RabbitMQ's consumer timeout), so an outage does not spend the
//     message's delivery limit; after that wait Retry, on shutdown GiveBack.
//     While the MQTT link is down the caller takes no new results at all
//     (its consumer is gated on the link), leaving them to callers that
//     can deliver;
//   - published and acknowledged by the broker: Done; not acknowledged
//     within Config.PublishTimeout: Retry.
//
// Dead letters: RabbitMQ routes a copy of every dead letter to the notify
// queue (contracts.Topology.DeadNotifyQueue). For a dead-lettered command of
// an app waiting for a result, the caller delivers a CodeDeadLettered error
// result with the app's id, so errors travel even when the pipeline itself
// sets a command aside; the dead letter stays in the dead-letter queue for
// `cafe dead`.
//
// An app that is offline gets its results later if it keeps a persistent
// session: connect with clean session false and a fixed client id, and
// subscribe to its results topic at QoS 1. Mosquitto then queues results
// for it (deploy/mosquitto/cafe.conf: up to max_queued_messages per client,
// for persistent_client_expiration). A result can arrive twice (a redelivery
// after a crash); apps dedupe by the JSON-RPC id, their MsgID.
package caller
