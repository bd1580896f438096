// Package ledger is the ledger role: it keeps every command's status
// history and result in PostgreSQL (package contracts/records), off the
// command's critical path, so apps can fetch over HTTP what they missed
// over MQTT (the cashier's GET /v1/commands/{id} and GET /v1/results).
//
// Consumes: the events queue (contracts.Topology.EventsQueue), with manual
// acks. RabbitMQ copies into it every command the cashier queued
// (accepted), every result a barista published (done) and every dead
// letter (dead); baristas post "sent" and callers "delivered" events to
// the events exchange (contracts.Event), gathered into batches
// (contracts.EventBatch: one message, many events; acked once all of them
// are committed), and the cashier "refused" events to the commands
// exchange with key contracts.RoutingKeyRefused (taken only from a command
// publisher, CAFE_COMMAND_PUBLISHERS: a refusal makes its command final
// and frees its id).
//
// Produces: a row per command in cafe_commands, its history in it, and a
// row per result in cafe_results, numbering an app's results for
// GET /v1/results (see records; cafe_events is a view of the
// histories). A
// dead-lettered command's result is the -32005 notice the caller delivers
// for it (caller.DeadLetterNotice), so the bytes match.
//
// Consuming: in batches (amqplink.Link.ConsumeBatches). One goroutine
// reads the deliveries in the queue's order and decodes each into the
// batch in hand, which is committed at Config.BatchSize events (a
// delivery's events are never split), at Config.BatchSize deliveries (the
// prefetch: nothing more can come before an ack), or Config.BatchWait
// after its first delivery; then all its deliveries are acked with one
// basic.ack (multiple=true, up to the batch's last delivery tag). Its
// writes are therefore in the queue's order: the first result written for
// a command is its result.
//
// Ack policy (batch.Add turns each delivery into an amqplink.Verdict):
//
//   - not an event (no valid command id, unknown exchange or kind, a kind
//     its route does not carry, a refusal from who may not publish
//     commands, bad headers, a batch with one bad event): Poison, settled
//     at once, without waiting for the batch around it; the events queue
//     has no dead-letter exchange, so it is dropped, logged and counted
//     (cafe_ledger_events_total{kind="invalid"});
//   - nothing to record (a dead letter of no app): Done, acked with the
//     batch it arrived in;
//   - otherwise the event joins the batch, and is acked only once that
//     batch has committed. A batch PostgreSQL refuses, or does not commit
//     within Config.WriteTimeout (30 s: a hung server, or one gone without
//     closing its connections), is written again every Config.RetryEvery
//     (1 s; neither is a setting), holding its messages, so with
//     PostgreSQL down nothing is acked and the events wait in RabbitMQ;
//     the ledger catches up when it returns. On shutdown the batch in hand
//     has Config.Grace to commit; if it does not, all its messages are
//     handed back (one basic.nack with requeue), and those not yet taken
//     go back with the channel.
//
// Writing an event twice changes nothing (records), so a batch that
// committed but whose acks were lost is harmless when it comes again.
//
// Limits: the events queue holds CAFE_EVENTS_MAX_LENGTH messages (2 000 000
// by default; two to four per command, fewer under load as the explicit
// events share batches); beyond that RabbitMQ drops the
// oldest (drop-head), and their commands' history has gaps. Commands and
// their history are removed Config.Retention (7 days) after their first
// event, in the background, every minute.
//
// Any number of ledgers may run: they compete for the events queue, and
// their batches that number results are serialised by an advisory lock
// (see records).
package ledger
