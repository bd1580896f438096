package contracts

import (
	"encoding/json"
	"strconv"
)

// Code is a JSON-RPC 2.0 error code. A Code is itself an error, so callers
// can match any *Error carrying it with errors.Is(err, contracts.CodeDeviceOffline).
type Code int

// Standard JSON-RPC 2.0 codes.
const (
	CodeParseError     Code = -32700 // body is not valid JSON
	CodeInvalidRequest Code = -32600 // valid JSON, not a valid request
	CodeMethodNotFound Code = -32601
	CodeInvalidParams  Code = -32602
	CodeInternal       Code = -32603
)

// Pipeline codes, -32000..-32099. Each is defined here and nowhere else.
//
// Delivered to the app on clients/{clientID}/results as the error of a
// JSON-RPC response whose id is the app's MsgID:
const (
	// The device's retained presence says it is offline; the command was not sent.
	CodeDeviceOffline Code = -32000
	// The command was sent, and no reply came before the command's deadline.
	CodeDeviceTimeout Code = -32001
	// The deadline passed before a barista took the command; the device never saw it.
	CodeExpired Code = -32002
	// The device link failed repeatedly (circuit breaker open) or the MQTT
	// broker could not take the command; the device was not reached.
	CodeDeviceUnreachable Code = -32003
	// The device answered, but not with a JSON-RPC response to this command
	// (not JSON, wrong id, neither result nor error, over the size limit).
	CodeBadDeviceReply Code = -32004
	// The command was set aside as a dead letter (it was delivered too often
	// without finishing, e.g. it kept crashing workers, or could not be
	// read); a developer can inspect and replay it (`cafe dead`).
	CodeDeadLettered Code = -32005
)

// Answered by the cashier over HTTP (in the body of a non-2xx response):
const (
	CodeUnauthorized  Code = -32010 // 401: no or unknown bearer token
	CodeForbidden     Code = -32011 // 403: the client may not command this device
	CodeTooLarge      Code = -32012 // 413: body over the configured limit
	CodeRateLimited   Code = -32013 // 429: over the client's rate
	CodeUnavailable   Code = -32014 // 503: broker unreachable, queue full, or confirm timeout
	CodeUnknownDevice Code = -32015 // 404: the device is not registered
	CodeNoRecord      Code = -32016 // 404: no record of that command for this app (never sent, or past retention)
	CodeDuplicateID   Code = -32017 // 409: a command of this app with that id is still pending
)

// Message is the short fixed message that goes with the code.
func (c Code) Message() string {
	switch c {
	case CodeParseError:
		return "Parse error"
	case CodeInvalidRequest:
		return "Invalid Request"
	case CodeMethodNotFound:
		return "Method not found"
	case CodeInvalidParams:
		return "Invalid params"
	case CodeInternal:
		return "Internal error"
	case CodeDeviceOffline:
		return "device offline"
	case CodeDeviceTimeout:
		return "device timeout"
	case CodeExpired:
		return "command expired"
	case CodeDeviceUnreachable:
		return "device unreachable"
	case CodeBadDeviceReply:
		return "bad device reply"
	case CodeDeadLettered:
		return "command dead-lettered"
	case CodeUnauthorized:
		return "unauthorized"
	case CodeForbidden:
		return "forbidden"
	case CodeTooLarge:
		return "request too large"
	case CodeRateLimited:
		return "rate limited"
	case CodeUnavailable:
		return "service unavailable"
	case CodeUnknownDevice:
		return "unknown device"
	case CodeNoRecord:
		return "no such command"
	case CodeDuplicateID:
		return "duplicate id"
	}
	return "error " + strconv.Itoa(int(c))
}

// Error makes a bare Code usable as an error and as an errors.Is target.
func (c Code) Error() string { return c.Message() }

// Error is a JSON-RPC 2.0 error object. It implements error; errors.Is
// matches it against a Code or another *Error with the same code.
type Error struct {
	Code    Code            `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// NewError returns an error object for code with the code's message and,
// when data is not nil, data marshalled as its "data" member.
func NewError(code Code, data any) *Error {
	e := &Error{Code: code, Message: code.Message()}
	if data != nil {
		if b, err := json.Marshal(data); err == nil {
			e.Data = b
		}
	}
	return e
}

func (e *Error) Error() string {
	if len(e.Data) > 0 {
		return e.Message + " (" + strconv.Itoa(int(e.Code)) + "): " + string(e.Data)
	}
	return e.Message + " (" + strconv.Itoa(int(e.Code)) + ")"
}

// Is reports whether target is the same code (a Code or an *Error).
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Code:
		return e.Code == t
	case *Error:
		return e.Code == t.Code
	}
	return false
}

// Detail is the "data" member of the errors the pipeline produces: what was
// wrong and, where it helps, where.
type Detail struct {
	Index    *int   `json:"index,omitempty"`     // position in a batch
	Field    string `json:"field,omitempty"`     // offending member, header or path parameter
	DeviceID string `json:"device_id,omitempty"` // the device a pipeline error is about
	Reason   string `json:"reason,omitempty"`    // what happened or what to fix, in words
}

func invalid(index int, batch bool, field, reason string) *Error {
	d := Detail{Field: field, Reason: reason}
	if batch {
		d.Index = &index
	}
	return NewError(CodeInvalidRequest, d)
}
