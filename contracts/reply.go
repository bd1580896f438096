package contracts

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"unicode/utf8"

	"github.com/buger/jsonparser"
)

// MaxPresenceBytes bounds a presence payload.
const MaxPresenceBytes = 4 << 10

// CheckReply validates a device's reply to the request whose raw id is
// wantID: a JSON-RPC 2.0 response object with the same id and exactly one of
// "result" or "error" (an object with an integer "code" and a string
// "message"). The reply travels to the app unchanged, so this only decides
// whether it may. The error is an *Error with CodeBadDeviceReply whose Data
// says what was wrong.
func CheckReply(raw []byte, wantID []byte) error {
	bad := func(reason string) error { return NewError(CodeBadDeviceReply, Detail{Reason: reason}) }
	if !json.Valid(raw) || !utf8.Valid(raw) {
		return bad("reply is not valid JSON in UTF-8")
	}
	trimmed := bytes.TrimSpace(raw)
	if trimmed[0] != '{' {
		return bad("reply is not a JSON object")
	}
	var seen int
	var reason string
	err := jsonparser.ObjectEach(trimmed, func(key, value []byte, dt jsonparser.ValueType, off int) error {
		bit, problem := replyMember(trimmed, key, value, dt, off, wantID)
		switch {
		case bit == 0:
			return nil
		case seen&bit != 0:
			reason = `member "` + string(key) + `" appears more than once`
		default:
			reason = problem
		}
		seen |= bit
		if reason != "" {
			return errStop
		}
		return nil
	})
	switch {
	case reason != "":
		return bad(reason)
	case err != nil:
		return bad(err.Error())
	case seen&replyJSONRPC == 0:
		return bad(`"jsonrpc" is missing`)
	case seen&replyID == 0:
		return bad(`"id" is missing`)
	case seen&(replyResult|replyError) == 0:
		return bad(`neither "result" nor "error" is present`)
	case seen&(replyResult|replyError) == replyResult|replyError:
		return bad(`both "result" and "error" are present`)
	}
	return nil
}

// The members of a reply that CheckReply reads, as bits of a set.
const (
	replyJSONRPC = 1 << iota
	replyID
	replyResult
	replyError
)

// replyMember checks one member of a reply object (obj): its bit (0 for
// members that do not matter) and what is wrong with it ("" if nothing).
// off is where value ends in obj.
func replyMember(obj, key, value []byte, dt jsonparser.ValueType, off int, wantID []byte) (bit int, problem string) {
	switch string(key) {
	case "jsonrpc":
		if dt != jsonparser.String || string(value) != Version {
			return replyJSONRPC, `"jsonrpc" is not "2.0"`
		}
		return replyJSONRPC, ""
	case "id":
		tok := value
		if dt == jsonparser.String {
			tok = obj[off-len(value)-2 : off]
		}
		if !sameID(tok, dt, wantID) {
			return replyID, "reply id " + string(truncate(tok, 140)) + " does not match the command's id " + string(wantID)
		}
		return replyID, ""
	case "result":
		return replyResult, ""
	case "error":
		return replyError, checkErrorObject(value, dt)
	}
	return 0, ""
}

func checkErrorObject(value []byte, dt jsonparser.ValueType) string {
	if dt != jsonparser.Object {
		return `"error" is not an object`
	}
	code, err := jsonparser.GetInt(value, "code")
	if err != nil || code < -1<<31 || code > 1<<31-1 {
		return `"error.code" is not an integer`
	}
	if _, mt, _, err := jsonparser.Get(value, "message"); err != nil || mt != jsonparser.String {
		return `"error.message" is not a string`
	}
	return ""
}

// sameID compares a reply's id token with the request's. Tokens equal byte
// for byte match; otherwise strings match when they decode equal (a device
// may escape characters) and numbers when they are the same integer (a
// device may write 7 as 7.0).
func sameID(tok []byte, dt jsonparser.ValueType, want []byte) bool {
	if bytes.Equal(tok, want) {
		return true
	}
	switch dt {
	case jsonparser.String:
		if len(want) == 0 || want[0] != '"' {
			return false
		}
		var a, b string
		return json.Unmarshal(tok, &a) == nil && json.Unmarshal(want, &b) == nil && a == b
	case jsonparser.Number:
		if len(want) == 0 || want[0] == '"' {
			return false
		}
		// Exact decimal comparison: 7, 7.0 and 7e0 are the same number, and
		// two 19-digit ids that differ in the last digit are not (as they
		// would be as float64s).
		var a, b big.Rat
		_, okA := a.SetString(string(tok))
		_, okB := b.SetString(string(want))
		return okA && okB && a.Cmp(&b) == 0
	}
	return false
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ErrPresenceCleared is returned for an empty presence payload: the retained
// message was deleted, and the device's presence is unknown again.
var ErrPresenceCleared = errors.New("presence cleared (empty retained message)")

// ParsePresence reads a device's presence payload: a JSON object with a
// boolean "online" member. Devices may add other members.
func ParsePresence(payload []byte) (online bool, err error) {
	switch {
	case len(payload) == 0:
		return false, ErrPresenceCleared
	case len(payload) > MaxPresenceBytes:
		return false, errors.New("presence payload is larger than " + strconv.Itoa(MaxPresenceBytes) + " bytes")
	case !json.Valid(payload):
		return false, errors.New("presence payload is not valid JSON")
	}
	trimmed := bytes.TrimSpace(payload)
	if trimmed[0] != '{' {
		return false, errors.New("presence payload is not a JSON object")
	}
	v, err := jsonparser.GetBoolean(trimmed, "online")
	if err != nil {
		return false, errors.New(`presence payload has no boolean "online" member`)
	}
	return v, nil
}
