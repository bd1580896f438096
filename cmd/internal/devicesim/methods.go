package devicesim

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/buger/jsonparser"

	"cafe/contracts"
)

// The methods a simulated device knows.
const (
	MethodEcho  = "echo"  // result: the params as sent, or null
	MethodSleep = "sleep" // params {"ms":N} or [N]; result {"slept_ms":N} after N ms (at most MaxSleep)
	MethodFail  = "fail"  // error {"code":1000,"message":"simulated failure","data":<params>}
	MethodNever = "never" // no reply, ever
)

// CodeSimulatedFailure is the device's own error code, returned by "fail"
// and by the error rate. It is outside the JSON-RPC reserved range, as a
// real device's errors would be, and the pipeline passes it through.
const CodeSimulatedFailure contracts.Code = 1000

// MessageSimulatedFailure goes with CodeSimulatedFailure.
const MessageSimulatedFailure = "simulated failure"

// outcome is what running a request produced.
type outcome struct {
	result []byte           // raw JSON result, when err is nil
	err    *contracts.Error // JSON-RPC error object; Data is spliced in raw
	silent bool             // no reply at all ("never")
}

// plan decides what method does with params (raw JSON, nil when absent):
// the outcome, and how long the device is busy before it has it.
func plan(method string, params []byte) (o outcome, busy time.Duration) {
	switch method {
	case MethodEcho:
		if params == nil {
			return outcome{result: []byte("null")}, 0
		}
		return outcome{result: params}, 0
	case MethodSleep:
		ms, reason := sleepParams(params)
		if reason != "" {
			return outcome{err: contracts.NewError(contracts.CodeInvalidParams, contracts.Detail{Field: "params", Reason: reason})}, 0
		}
		return outcome{result: []byte(`{"slept_ms":` + strconv.FormatInt(ms, 10) + `}`)}, time.Duration(ms) * time.Millisecond
	case MethodFail:
		return failure(params), 0
	case MethodNever:
		return outcome{silent: true}, 0
	}
	return outcome{err: contracts.NewError(contracts.CodeMethodNotFound, contracts.Detail{Field: "method",
		Reason: "the simulated device knows echo, sleep, fail and never"})}, 0
}

// failure is the device error of "fail" and of the error rate.
func failure(params []byte) outcome {
	return outcome{err: &contracts.Error{Code: CodeSimulatedFailure, Message: MessageSimulatedFailure, Data: params}}
}

// sleepParams reads N from {"ms":N} or [N], capped at MaxSleep. reason says
// what is wrong, or is empty.
func sleepParams(params []byte) (ms int64, reason string) {
	const want = `sleep takes {"ms":N} or [N], N a whole number of milliseconds >= 0`
	var tok []byte
	var dt jsonparser.ValueType
	var err error
	switch {
	case len(params) == 0:
		return 0, want
	case params[0] == '{':
		tok, dt, _, err = jsonparser.Get(params, "ms")
	case params[0] == '[':
		n := 0
		_, err = jsonparser.ArrayEach(params, func(v []byte, t jsonparser.ValueType, _ int, _ error) {
			if n == 0 {
				tok, dt = v, t
			}
			n++
		})
		if err == nil && n != 1 {
			return 0, want
		}
	default:
		return 0, want
	}
	if err != nil || dt != jsonparser.Number {
		return 0, want
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !math.IsInf(f, 1) { // a huge number is only capped
		return 0, want
	}
	if f < 0 || f != math.Trunc(f) {
		return 0, want
	}
	return int64(min(f, float64(MaxSleep/time.Millisecond))), ""
}

// method returns the method name of req with JSON escapes decoded
// (contracts leaves "ech\u006f" as sent).
func method(req contracts.Request) string {
	if bytes.IndexByte(req.Method, '\\') < 0 {
		return string(req.Method)
	}
	s, err := jsonparser.ParseString(req.Method)
	if err != nil {
		return string(req.Method) // unknown method, answered as such
	}
	return s
}

// params returns the raw "params" member of req, or nil.
func params(req contracts.Request) []byte {
	v, _, _, err := jsonparser.Get(req.Raw, "params")
	if err != nil {
		return nil
	}
	return v
}

var nullID = []byte("null")

// response builds the JSON-RPC response to the request whose raw id token
// is id (nil: null). It splices the id, the result and the error's data in
// as raw bytes, so they reach the app exactly as given (re-encoding would
// compact them and escape <, > and &).
func response(id []byte, o outcome) []byte {
	if id == nil {
		id = nullID
	}
	b := make([]byte, 0, 64+len(id)+len(o.result))
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	if o.err == nil {
		b = append(b, `,"result":`...)
		b = append(b, o.result...)
		return append(b, '}')
	}
	msg, _ := json.Marshal(o.err.Message) // a string always marshals
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(o.err.Code), 10)
	b = append(b, `,"message":`...)
	b = append(b, msg...)
	if len(o.err.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, o.err.Data...)
	}
	return append(b, "}}"...)
}
