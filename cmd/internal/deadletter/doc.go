// Package deadletter lets developers and operators see, replay and purge
// what the pipeline put aside: the messages RabbitMQ dead-lettered from the
// commands and results queues into {prefix}.dead, each with its death
// history in the x-death header ("rejected": not a valid command or
// result, or from a publisher the consumer does not trust;
// "delivery_limit": delivered too often, e.g. it kept crashing workers).
//
// # Filters
//
// List, Replay and Purge take a Filter (message ids, reason, client,
// device and method patterns, age since death, a limit); every field set
// must match.
//
// # Looking without losing: how the dead queue is browsed
//
// {prefix}.dead is a quorum queue declared with no x-delivery-limit and no
// dead-letter exchange (contracts.Topology). Browsing takes messages with
// basic.get without acking them, on a channel of its own, and closes the
// channel at the end: RabbitMQ returns every unsettled message. Three
// properties make that safe, and the tests prove each on the real broker:
//
//   - nothing is lost: a returned message is not a failed delivery that
//     can drop it, because the queue has no delivery limit (RabbitMQ 3.x
//     applies none unless declared) and no dead-letter exchange of its own;
//   - the order is kept: a quorum queue serves returned messages ahead of
//     the rest, in the order they were returned. So a browse always takes
//     every letter (up to the scan limit, 100,000 by default), even when
//     it has already found what it wanted, and returns them all at once,
//     in order. (Returning only the first few, after an earlier browse,
//     would move them behind the others: the tests caught that.) A queue
//     longer than the scan limit may be rotated by a browse;
//   - nothing is half-done: a message is acked (removed) only after what
//     was done with it — a confirmed republish — has happened.
//
// The return does count a delivery (x-delivery-count grows by one each
// browse). RabbitMQ 4.0 and later give quorum queues a default delivery
// limit of 20, after which a message with no dead-letter exchange is
// dropped. So on such a broker a browse stops, with an error saying what
// to do, at a letter already looked at 15 times. The alternatives are
// worse: the management API's "get messages" is the same get-and-requeue,
// and moving letters through another queue reorders them and doubles
// them on a crash.
//
// # Replay
//
// Replay republishes each chosen dead letter to the exchange and routing
// key it died from, with publisher confirms and the republisher's login
// as its user-id (cafe-ops: baristas and the caller accept it, see
// identity.CommandPublishers), and removes it only once its copy is
// confirmed, so a replay interrupted anywhere loses nothing (at worst a
// letter is both replayed and still there). Before that it re-checks the
// letter (Check; RegistryCheck as the cashier would: the client exists,
// the device is registered, the client may command it) and its deadline
// (unless ReplayOptions.Extend gives it a new one); a refused letter
// stays, and the Outcome says why. A copy carries HeaderReplayCount, one
// more than the letter's. A dry run decides the same way and changes
// nothing. A rate.Limiter paces the copies.
//
// # Purge and audit
//
// Purge removes chosen letters for good. Every replay and purge is
// recorded with Audit: one JSON line (who, when, what filter, how many)
// appended to the audit file, and a log line.
package deadletter
