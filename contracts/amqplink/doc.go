// Package amqplink is how cafe's services speak to RabbitMQ: one Link per
// connection that survives broker restarts, a Publisher whose nil error means
// "confirmed and durable", and Consume, which delivers to a bounded pool of
// handlers, settles each delivery from the handler's Verdict, and
// re-subscribes after every reconnect.
//
// # Verdicts: the ack policy carried out in one place
//
// A Handler never acks, nacks or rejects: it returns a Verdict, and the
// consumer settles the delivery from it, logs it and counts it
// (ConsumerMetrics):
//
//	Done      basic.ack                  the work is done (its result durably published)
//	Retry     basic.nack, requeue        not now; RabbitMQ counts it against the delivery limit
//	Poison    basic.reject, no requeue   never valid; dead-lettered at once (reason "rejected")
//	GiveBack  basic.nack, requeue        unfinished at shutdown; for another consumer
//
// Acks are coalesced (acks.go): a Done delivery is acked within 5 ms,
// usually by one basic.ack with multiple=true covering every finished
// delivery up to it, which RabbitMQ handles about as cheaply as one. An ack
// is only ever later than before, never earlier than the work it
// acknowledges; one lost with its channel means a redelivery. Retry,
// Poison and GiveBack are still sent at once, one by one.
//
// # Batches
//
// Link.ConsumeBatches is Consume for a role whose work is done a batch at
// a time (the ledger: a transaction per batch): one goroutine hands the
// deliveries in order to a BatchHandler's Add, which returns each one's
// Verdict (Done: it joins the batch; anything else is settled at once, as
// above), and calls Flush once the batch is full or has waited long
// enough; a batch flushed is acked with one basic.ack with multiple=true
// up to its last tag, one Flush gave up on is handed back with one
// basic.nack. No worker pool, no per-delivery hand-off or held ack.
//
// Scan applies the same verdicts to messages taken one by one with
// basic.get (the dead-letter tools): Done removes, anything else leaves the
// message where it was. These (Consume, ConsumeBatches and Scan) are the
// only places in cafe that settle a delivery.
//
// # Reconnection
//
// Config.URL is a list (ParseURLs): one URL, or one per node of a RabbitMQ
// cluster, comma-separated, each checked at New. Every connection attempt
// tries the URLs in turn, starting after the one whose connection was lost
// (that node may be the one that died), and the link logs the URL it got
// (with the cluster's name); a round in which none answers counts as one
// failure for the backoff, and LastError names each URL's failure. Quorum
// queues can be consumed through any node, so a consumer that comes back on
// another node gets its queue's deliveries from the queue's new leader.
// Dial, for one-shot tools, takes the first URL that answers.
//
// Link.Run dials with exponential backoff (100 ms up to Config.MaxBackoff),
// checks the server (CheckServer: RabbitMQ 3.10+, confirms, nacks,
// connection.blocked), declares the topology of package contracts (Declare),
// and only then hands the connection to its users. When the connection drops,
// users' channels close, Publisher fails every unconfirmed publish with
// ErrConfirmLost, Consume's channel closes (RabbitMQ returns its unsettled
// deliveries to the queue), and both wait for the next connection. Services
// therefore start with the broker down and become ready when it comes up.
//
// This is written here rather than with amqp091-go's opt-in recovery so that
// the two rules cafe depends on are explicit in one place: a publish is
// reported as taken only after its own confirm, and a delivery is never
// settled on a channel other than the one that carried it.
//
// A Publisher whose channel has nacked every publish for 2 s opens a new
// channel: RabbitMQ 3.10 can keep nacking on a channel that published to a
// quorum queue while its leader was lost (a node killed), though a new
// channel publishes fine; a merely full queue acks now and then.
//
// # TLS
//
// An amqps:// URL connects over TLS; Config.TLS gives the CA file (default:
// the system's trust store) and an optional client certificate and key
// (SettingsTLS: CAFE_AMQP_CA_FILE, CAFE_AMQP_CERT_FILE, CAFE_AMQP_KEY_FILE).
// New reads them and refuses files it cannot use; Dial, the one-shot
// connection of tools, does the same. A certificate failure while
// connecting is logged once per cause with a hint (package linktls) instead
// of the generic "unreachable" warning, and the link keeps retrying.
//
// # Notifications
//
// amqp091-go sends Notify* events synchronously and drops an event a
// listener has not taken within five seconds. Every listener here is drained
// by a goroutine that does nothing else: the connection's close and blocked
// channels by Link.serve, a channel's confirms and returns by
// Publisher.dispatch. Close channels are buffered.
//
// # Gates
//
// A consumer whose handlers need more than this link (the barista needs its
// MQTT link and its results link) passes Gates: nothing is taken until all
// are ready, and taking pauses while any is lost, so work goes to the
// consumers that can do it. Link.PublishGate is ready while a link can
// publish (connected, not blocked).
//
// # Writes
//
// Connections are dialed through package groupwrite, which gathers the many
// small frames (a publish, an ack) written at once into one system call.
//
// # Flow control
//
// Link.Blocked reports a connection.blocked alarm; Publisher.Publish then
// fails at once with ErrBlocked instead of writing into a socket the broker
// has stopped reading. Services that both consume and publish use two links,
// so that a blocked publisher never holds back acks.
package amqplink
