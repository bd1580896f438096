// Package status gathers the state of one cafe pipeline for operators:
// `cafe status` prints it, and a console can serve the same Snapshot (one
// implementation behind both; a Gatherer is safe to reuse between calls).
//
// # Sources
//
//   - RabbitMQ's management API (rabbitmq_management, as cafe-ops with the
//     monitoring tag): each queue's depth, ready and unacked counts,
//     consumers, and rates in (publishes/s) and out (acks/s). Baristas and
//     callers running are the consumers on the commands and results
//     queues (one per process), and how many of the ops endpoints given
//     for them answer.
//   - MQTT, as cafe-ops: devices online, counted from every device's
//     retained presence ({"online": true}), read to the end with
//     mqttlink.Sync. This needs no barista and is what the baristas
//     themselves trust; a barista's own count only covers what it saw.
//   - The baristas' /metrics (their ops endpoints, given by URL since a
//     worker's port is its own): circuit breakers open
//     (cafe_barista_breakers_open, summed) and how long the last command a
//     barista received had waited (cafe_barista_queue_wait_seconds).
//   - The dead-letter queue, browsed as package deadletter does (safely:
//     see there), counted by reason, and browsed again only when the dead
//     queue's depth or publish count changed.
//
// # The oldest waiting command
//
// RabbitMQ cannot tell the age of a quorum queue's head, and peeking it
// with get-and-requeue would count a delivery against the command's
// delivery limit, so the status never peeks the commands queue. It takes
// the barista's wait metric when a barista answered, otherwise estimates
// ready ÷ rate out, and says which (Oldest.Source); see oldest.
//
// # Failures
//
// A source that cannot be read (a broker down, a refused login, an
// endpoint that does not answer) adds an Error naming it, what went wrong
// and what to do; every other source is still read and shown. Each source
// has Config.Timeout, and all are read in parallel.
package status
