package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"

	"github.com/buger/jsonparser"
)

// The request envelope, as the cashier accepts it and the barista re-checks it.
//
// A body is one JSON-RPC 2.0 request object or a batch: a JSON array of 1 to
// MaxBatch request objects. A request object must have
//
//	"jsonrpc": exactly "2.0"
//	"method":  a non-empty string of at most MaxMethodLen bytes, not starting with "rpc."
//	"id":      optional; a number or string as described in ids.go (never null).
//	           Absent: a notification, a one-way command that gets no result.
//	"params":  optional; an object or an array (never null)
//
// Other members are allowed and travel untouched. A member named twice is
// invalid (parsers disagree on which copy wins, so the device might act on a
// different value from the one that was checked). In a batch, two requests
// may not share an id. A batch is all-or-nothing: one invalid request makes
// the whole body invalid.
//
// Validation scans the bytes and never decodes and re-encodes them: each
// Request's Raw is a slice of the body, forwarded as it arrived.

// MaxMethodLen is the longest accepted method name, in bytes as sent.
const MaxMethodLen = 256

// Request is one JSON-RPC request found in a body. Its slices point into the
// body they were parsed from.
type Request struct {
	Raw    []byte // the request object exactly as received
	ID     []byte // the raw JSON token of "id" (7 or "a-7"); nil for a notification
	Method []byte // the method string's contents as sent (escapes not decoded)
}

// Notification reports whether the request has no id (one-way: no result).
func (r Request) Notification() bool { return r.ID == nil }

// ParseBody validates an HTTP body and returns its requests, appended to
// dst[:0] so that a caller can reuse the slice. batch tells whether the body
// was an array. The error is an *Error with CodeParseError (not JSON) or
// CodeInvalidRequest (its Data names the index, field and reason).
func ParseBody(body []byte, maxBatch int, dst []Request) (reqs []Request, batch bool, err error) {
	reqs = dst[:0]
	if !json.Valid(body) {
		return reqs, false, NewError(CodeParseError, Detail{Reason: "body is not valid JSON"})
	}
	if !utf8.Valid(body) {
		return reqs, false, NewError(CodeParseError, Detail{Reason: "body is not valid UTF-8"})
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch trimmed[0] {
	case '{':
		r, err := parseObject(trimmed, 0, false)
		if err != nil {
			return reqs, false, err
		}
		return append(reqs, r), false, nil
	case '[':
		reqs, err = parseBatch(trimmed, maxBatch, reqs)
		return reqs, true, err
	}
	return reqs, false, NewError(CodeInvalidRequest, Detail{Reason: "body must be a request object or an array of them"})
}

func parseBatch(data []byte, maxBatch int, reqs []Request) ([]Request, error) {
	var failed error
	i := 0
	_, perr := jsonparser.ArrayEach(data, func(value []byte, dt jsonparser.ValueType, _ int, _ error) {
		if failed != nil {
			return
		}
		if i >= maxBatch {
			failed = invalid(i, true, "", "batch is larger than the limit of "+strconv.Itoa(maxBatch)+" requests")
			return
		}
		if dt != jsonparser.Object {
			failed = invalid(i, true, "", "batch element must be a request object")
			return
		}
		r, err := parseObject(value, i, true)
		if err != nil {
			failed = err
			return
		}
		for j := range reqs {
			if r.ID != nil && bytes.Equal(reqs[j].ID, r.ID) {
				failed = invalid(i, true, "id", "id is used twice in the batch (also at index "+strconv.Itoa(j)+")")
				return
			}
		}
		reqs = append(reqs, r)
		i++
	})
	if failed != nil {
		return reqs, failed
	}
	if perr != nil {
		return reqs, NewError(CodeParseError, Detail{Reason: perr.Error()})
	}
	if len(reqs) == 0 {
		return reqs, NewError(CodeInvalidRequest, Detail{Reason: "batch is empty"})
	}
	return reqs, nil
}

// ParseRequest validates a single request object, for a consumer that
// re-checks what it takes from the queue.
func ParseRequest(raw []byte) (Request, error) {
	if !json.Valid(raw) || !utf8.Valid(raw) {
		return Request{}, NewError(CodeParseError, Detail{Reason: "request is not valid JSON in UTF-8"})
	}
	trimmed := bytes.TrimSpace(raw)
	if trimmed[0] != '{' {
		return Request{}, NewError(CodeInvalidRequest, Detail{Reason: "request must be a JSON object"})
	}
	return parseObject(trimmed, 0, false)
}

// member bits, to find duplicates and missing members without allocating.
const (
	seenJSONRPC = 1 << iota
	seenMethod
	seenID
	seenParams
)

var errStop = errors.New("stop")

// parseObject checks one request object. obj must be valid JSON starting with '{'.
func parseObject(obj []byte, index int, batch bool) (Request, error) {
	r := Request{Raw: obj}
	var seen int
	var bad *Error
	err := jsonparser.ObjectEach(obj, func(key, value []byte, dt jsonparser.ValueType, off int) error {
		bit, field, problem := r.member(obj, key, value, dt, off)
		switch {
		case bit == 0:
			return nil // other members travel untouched
		case seen&bit != 0:
			bad = invalid(index, batch, field, "member appears more than once")
		case problem != "":
			bad = invalid(index, batch, field, problem)
		}
		seen |= bit
		if bad != nil {
			return errStop
		}
		return nil
	})
	if bad != nil {
		return Request{}, bad
	}
	if err != nil {
		return Request{}, NewError(CodeParseError, Detail{Reason: err.Error()})
	}
	if seen&seenJSONRPC == 0 {
		return Request{}, invalid(index, batch, "jsonrpc", `is missing; it must be "2.0"`)
	}
	if seen&seenMethod == 0 {
		return Request{}, invalid(index, batch, "method", "is missing")
	}
	return r, nil
}

// member checks one member of a request object and records what the
// pipeline reads of it in r. It returns the member's bit (0 for members
// the pipeline does not read), its name, and what is wrong with it ("" if
// nothing). off is where value ends in obj.
func (r *Request) member(obj, key, value []byte, dt jsonparser.ValueType, off int) (bit int, field, problem string) {
	switch string(key) { // no allocation: the compiler compares in place
	case "jsonrpc":
		if dt != jsonparser.String || string(value) != Version {
			return seenJSONRPC, "jsonrpc", `must be the string "2.0"`
		}
		return seenJSONRPC, "jsonrpc", ""
	case "method":
		if problem := methodProblem(value, dt); problem != "" {
			return seenMethod, "method", problem
		}
		r.Method = value
		return seenMethod, "method", ""
	case "id":
		switch dt {
		case jsonparser.Number:
			r.ID = value
			if !validNumberID(value) {
				return seenID, "id", "a numeric id must be an integer of at most " + strconv.Itoa(MaxNumberIDDigits) + " digits, without fraction or exponent, and not -0"
			}
		case jsonparser.String:
			r.ID = obj[off-len(value)-2 : off] // with its quotes
			if !validStringID(value) {
				return seenID, "id", "a string id must be 1 to " + strconv.Itoa(MaxStringIDLen) + " characters from A-Z a-z 0-9 . _ : -"
			}
		default:
			return seenID, "id", "must be a number or a string (leave it out for a one-way command)"
		}
		return seenID, "id", ""
	case "params":
		if dt != jsonparser.Object && dt != jsonparser.Array {
			return seenParams, "params", "must be an object or an array when present"
		}
		return seenParams, "params", ""
	}
	return 0, "", ""
}

// methodProblem says what is wrong with a method member, or "".
func methodProblem(value []byte, dt jsonparser.ValueType) string {
	switch {
	case dt != jsonparser.String:
		return "must be a string"
	case len(value) == 0:
		return "must not be empty"
	case len(value) > MaxMethodLen:
		return "is longer than " + strconv.Itoa(MaxMethodLen) + " bytes"
	case bytes.HasPrefix(value, []byte("rpc.")):
		return `names starting with "rpc." are reserved by JSON-RPC`
	}
	return ""
}
