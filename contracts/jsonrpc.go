package contracts

import (
	"encoding/json"
)

// Version is the only accepted value of the "jsonrpc" member.
const Version = "2.0"

// NullID is the raw id of a response that cannot name its request.
var nullID = []byte("null")

// ErrorResponse returns a JSON-RPC 2.0 error response:
//
//	{"jsonrpc":"2.0","id":<id>,"error":{"code":...,"message":"...","data":...}}
//
// id is the request's raw id token exactly as the app sent it (7, "a-7"), so
// the app gets back the same JSON type; nil gives "id":null.
func ErrorResponse(id []byte, e *Error) []byte {
	if len(id) == 0 {
		id = nullID
	}
	body, err := json.Marshal(e)
	if err != nil { // an *Error always marshals; keep a valid response anyway
		body = []byte(`{"code":-32603,"message":"Internal error"}`)
	}
	out := make([]byte, 0, len(`{"jsonrpc":"2.0","id":,"error":}`)+len(id)+len(body))
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, id...)
	out = append(out, `,"error":`...)
	out = append(out, body...)
	out = append(out, '}')
	return out
}

// Response is a decoded JSON-RPC 2.0 response, for apps and tools that read
// results (the pipeline itself forwards device replies as bytes).
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}
