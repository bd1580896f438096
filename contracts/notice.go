package contracts

import (
	"strconv"
	"time"
)

// Status notices. An app that sends the HTTP header "Cafe-Events: status"
// with a command gets, on its results topic, besides the command's
// JSON-RPC response, small notices of its progress:
//
//	{"cafe":"status","status":"queued","id":7,"command_id":"…","at":"2026-…Z"}
//
// status is queued (the cashier queued it), sent (the MQTT broker took it
// for the device) or done (its result was just delivered). A notice has a
// member "cafe" and no member "jsonrpc", so it cannot be mistaken for a
// JSON-RPC response; id is the app's id as it sent it. Notices are best
// effort (published fire and forget, QoS 1 on MQTT like results): one may
// be missing, and a redelivered command may give a second sent; the result
// itself is never affected. They come in order as a rule (sent goes on the
// channel its result follows on, done after the result), but queued and
// sent come from different services and may, rarely, swap. One-way
// commands get none.
//
// Inside the pipeline, the cashier and the barista publish notices as
// messages without a body on the results exchange, with HeaderNotice and
// the result headers (ResultMeta); the caller turns each into the envelope
// above. The command, and its result, carry HeaderEvents, so the caller
// knows to follow the result with done.
const (
	HeaderCafeEvents = "Cafe-Events" // the HTTP request header
	EventsStatus     = "status"      // its one value
	HeaderNotice     = "cafe-notice" // AMQP: the notice's status (NoticeQueued, NoticeSent)
	NoticeQueued     = "queued"
	NoticeSent       = "sent"
	NoticeDone       = "done"
)

// NoticeBody is the envelope of a status notice for the app's raw id token.
func NoticeBody(status, idToken, commandID string, at time.Time) []byte {
	b := make([]byte, 0, 128+len(idToken))
	b = append(b, `{"cafe":"status","status":`...)
	b = strconv.AppendQuote(b, status)
	b = append(b, `,"id":`...)
	b = append(b, idToken...)
	b = append(b, `,"command_id":`...)
	b = strconv.AppendQuote(b, commandID)
	b = append(b, `,"at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// ValidNotice reports whether s is a notice status a cashier or barista sends.
func ValidNotice(s string) bool { return s == NoticeQueued || s == NoticeSent }
