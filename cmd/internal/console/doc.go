// Package console is cafe's web console (`cafe console`, and `cafe up` on
// a port of its own): what operators look at to see the fleet and the
// pipeline live, and where they replay or purge dead letters.
//
// # What it reads
//
// It reads the same sources as `cafe status` through small interfaces
// (Pipeline, DeadLetters): queues (depth, ready, unacked, rates,
// consumers) from RabbitMQ's management API, the dead-letter queue through
// cmd/internal/deadletter (the same filters, re-checks, dry run and audit
// as `cafe dead`), and the registry (clients, devices, operators). Device
// presence comes from an in-memory index (Index) fed by the retained
// presence topics devices/+/presence, subscribed as cafe-ops (the ACL lets
// cafe-ops read them), joined with the registry's devices: searching 20,000
// devices is a scan of a sorted slice, and a page is at most 200 rows.
//
// # Who may look
//
// No anonymous access: every page redirects to /login and every /api
// call answers 401 without a session. Operators are in the registry's
// operators: list (`cafe operators add`), with only their token's SHA-256.
// Logging in with a token gives a session cookie (HttpOnly, SameSite=Strict,
// Secure when served over TLS, 12 h by default); a session ends at logout,
// at its expiry, or at the next request after its operator is removed from
// the registry. Every POST carries the session's CSRF token (a form field
// or the X-CSRF-Token header); the login form itself is protected by a
// double-submit cookie. Replays and purges are audited under the
// operator's id.
//
// # Live updates
//
// /api/events is a server-sent event stream: a "pipeline" event every
// second with the queues and each source's state. A source that cannot be
// read is reported as down with the time it went down ("RabbitMQ
// unreachable since 12:03:04"), and the page greys out the numbers it last
// had instead of showing them as current.
//
// # Front end
//
// Plain HTML, CSS and JavaScript embedded in the binary (web/): no build
// step. One template per page, one script, one style sheet; labels on
// every control, keyboard-usable, readable at phone width.
package console
