// Package records is cafe's command ledger in PostgreSQL: the schema, the
// ledger's batched writes (package caller/ledger consumes the events and
// calls Write) and the cashier's reads (GET /v1/commands/{id},
// GET /v1/results).
//
// # Schema (migrations run by the ledger at start, Migrate)
//
//	cafe_commands  one row per command (its command id, the repeat key):
//	               client, device, the app's id token, status, refused_at
//	               (migration 2), its history (event id → [kind, at in
//	               µs, outcome]; migration 3), recorded_at (its first
//	               event: retention counts from it; migration 4, which
//	               also sets fillfactor 80 so that an update setting no
//	               result can be HOT; migration 5: 50), and
//	               once done its result (the exact bytes the app gets over
//	               MQTT), outcome, done_at and done_seq (indexed by none
//	               since migration 5, so the update that sets them can be
//	               HOT too)
//	cafe_results   one row per result (migration 5; insert-only): client,
//	               done_seq (the two its primary key, GET /v1/results's
//	               order and cursor), command id and done_at
//	cafe_events    a view: one row per event of the histories (event id,
//	               command, kind, at, outcome); a table of its own until
//	               migration 3 moved it into the rows (a row and three
//	               index entries per event)
//	cafe_done_seq  the sequence that orders results as they finished
//
// Tables go in the first schema of the connection's search_path, so a test
// (or a second installation) can live in a schema of its own:
// postgres://…/cafe?search_path=mine.
//
// # Idempotence and order
//
// Every event has an id (the broker's copies: kind and command id; the
// explicit events: their cafe-event-id), and an event already in its
// command's history is skipped, so a redelivered batch changes nothing.
// A command's status only moves forward (queued → sent → done →
// delivered), whatever order its events arrive in. A refusal (the
// cashier's: RabbitMQ did not take the command) sets refused_at, whatever
// the order too: a command still queued with it reads as refused
// (StatusRefused) and is not pending, and one that went further shows
// that status. Its first result is its result: a second result for one
// command (a barista redelivered the command after publishing) is kept in
// the history but does not replace the first.
//
// Results are numbered from cafe_done_seq when they are written (the
// command's done_seq, and its row in cafe_results, in the batch's one
// statement). Each
// batch that numbers results holds a transaction-level advisory lock, so
// batches of several ledgers commit their numbers in order: a reader that
// sees number n sees every number below it. That is what makes the
// cursor of GET /v1/results skip nothing and repeat nothing.
//
// # Where autovacuum is off
//
// A row an update replaced, or retention deleted, is dead until a vacuum
// reclaims it (from the table and its indexes). Where autovacuum is off
// (the server's autovacuum, or a table's autovacuum_enabled; the CI
// machines run so), the ledger's janitor does its work after each round
// of retention (Tidy): VACUUM a table once its dead rows pass what
// autovacuum would have waited for, ANALYZE its key columns once enough
// changed, by autovacuum's own thresholds and the server's settings.
// With autovacuum on, Tidy does nothing.
//
// # Connections across a PostgreSQL restart
//
// Open does not dial; a call with PostgreSQL down fails at once (refused,
// or 57P03 while it starts), and the next call dials again. A pooled
// connection the server ended (a restart: its sessions got FATAL 57P01,
// or died with it) fails only when next used, and the pool pings only
// connections idle for over a second; so every call holds one connection
// for all its statements (Store.do) and, when that connection turns out
// dead, drops the pool's connections and runs once more on a fresh one. Every call is
// safe to run twice: the reads, and Write by its idempotence (a batch
// whose commit reached the server before the connection died is written
// again, changing nothing; its reserved result numbers are a gap).
package records
