// Package cashier takes commands from apps over HTTP and queues them; it is
// the till of the coffee shop, and it never makes a customer wait for the
// coffee.
//
// Consumes: POST /v1/devices/{deviceID}/commands with a JSON-RPC 2.0
// request or batch, an "Authorization: Bearer <token>" header and an
// optional "Cafe-Timeout: <Go duration>" header.
//
// Produces: one persistent AMQP message per request on the commands exchange
// (contracts.Topology), whose body is the request object's bytes exactly as
// the app sent them (validated by scanning, never decoded and re-encoded),
// with the client id, device id, deadline and arrival time in one header
// (contracts.CommandMeta, contracts.HeaderMeta) and a fresh command id as
// message id. For each command RabbitMQ nacked or returned, a
// fire-and-forget "refused" event for the ledger (notices.go, refusal), so
// that the copy the events queue took of it does not hold its id pending;
// none without a ledger (UseRefusals not called: cafe up --ledgers 0).
//
// Answers:
//
//	202  every request confirmed by RabbitMQ: {"client_id":"app-1","accepted":[7,"a"],"notifications":1}
//	400  bad JSON (-32700), bad envelope, device id or Cafe-Timeout (-32600, data.field names it)
//	401  no or unknown token (-32010)     403  device not entitled (-32011)
//	408  body not received within BodyTimeout (-32600)
//	409  an id of the body is that of a command of this app still pending (-32017; see duplicates.go;
//	     a refused command is not pending)
//	413  body over the limit (-32012)     429  over the client's rate (-32013), with Retry-After
//	503  RabbitMQ unreachable, blocked, queue full or no confirm in time (-32014), with Retry-After
//
// Every non-2xx body is a JSON-RPC error response with "id": null. Nothing is
// published unless every check passes, so a 4xx never queues anything. A 202
// is sent only after the broker's publisher confirm for every request in the
// body; a batch that is only partly confirmed gets a 503 whose data lists the
// accepted and refused ids.
//
// An answer given before the whole body was read says Connection: close and
// goes out at once; the cashier then reads and drops the rest of the body
// (up to MaxDiscardBytes past the limit, within BodyTimeout) before closing,
// so that clients that send the whole body before reading get the answer
// rather than a reset connection (body.go). At most MaxConns connections
// are served at once; more wait to be accepted. With CertFile and KeyFile
// it serves HTTPS (HTTP/1.1 over TLS).
//
// A 202 names where each accepted command's record is: Location for a
// single request, one Link header (rel="status") for a batch.
//
// Records (records.go), read from the ledger's database (package
// contracts/records; the cashier's transactions are read-only), same bearer
// auth, an app sees only its own: GET /v1/commands/{id} (status, history,
// and once done the result's exact bytes; 404 -32016 when there is no such
// record) and GET /v1/results?after={cursor}&wait={duration}&limit={n}
// (results in the order they finished, long-polling every 100 ms up to
// wait, at most 60s). Malformed ids, cursors, waits and limits are 400
// (-32600, data.field names it); no database, or one that fails, 503.
//
// Also served: GET /healthz (the process is up), GET /readyz (503 while
// there is no confirm channel to RabbitMQ or while shutting down), GET
// /metrics (Prometheus), and /debug/pprof/ when Config.Pprof is set.
package cashier
