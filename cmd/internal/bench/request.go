package bench

import (
	"encoding/json"
	"strconv"
)

// Requests are JSON-RPC 2.0 requests whose params carry padding, so that
// each request object is about Config.PayloadBytes long:
//
//	{"jsonrpc":"2.0","method":"echo","params":{"pad":"xxxx…"},"id":"3fa9c1.1.42"}
//
// The id is "{run}.{phase}.{seq}": run is random per invocation, so results
// of another bench or another app on the same client are recognised and
// left alone; phase and seq find the command's record without a map.

// typicalIDLen is the id length assumed when sizing the smallest request.
const typicalIDLen = 16

// requestParts are the fixed bytes around the id and the padding.
type requestParts struct {
	head []byte // {"jsonrpc":"2.0","method":"echo","params":{"pad":"
	mid  []byte // "},"id":"
	tail []byte // "}
	size int    // wanted size of each request object
}

func newRequestParts(method string, size int) requestParts {
	m, _ := json.Marshal(method) // a string always marshals
	return requestParts{
		head: append(append([]byte(`{"jsonrpc":"2.0","method":`), m...), `,"params":{"pad":"`...),
		mid:  []byte(`"},"id":"`),
		tail: []byte(`"}`),
		size: size,
	}
}

// minRequestBytes is the size of a request for method with no padding and
// an id of typical length: the least --payload-bytes can be.
func minRequestBytes(method string) int {
	p := newRequestParts(method, 0)
	return len(p.head) + len(p.mid) + typicalIDLen + len(p.tail)
}

// appendRequest appends one request with id to dst.
func (p requestParts) appendRequest(dst []byte, id string) []byte {
	pad := p.size - len(p.head) - len(p.mid) - len(id) - len(p.tail)
	dst = append(dst, p.head...)
	for range max(pad, 0) {
		dst = append(dst, 'x')
	}
	dst = append(dst, p.mid...)
	dst = append(dst, id...)
	return append(dst, p.tail...)
}

// appendBody appends the HTTP body for ids: one object, or an array of them.
func (p requestParts) appendBody(dst []byte, ids []string) []byte {
	if len(ids) == 1 {
		return p.appendRequest(dst, ids[0])
	}
	dst = append(dst, '[')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = p.appendRequest(dst, id)
	}
	return append(dst, ']')
}

// commandID is the JSON-RPC id of command seq of phase in run.
func commandID(run string, phase, seq int) string {
	b := make([]byte, 0, len(run)+16)
	b = append(b, run...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(phase), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(seq), 10)
	return string(b)
}

// parseCommandID splits an id made by commandID for run; ok is false for
// anyone else's id.
func parseCommandID(run string, id []byte) (phase, seq int, ok bool) {
	if len(id) < len(run)+4 || string(id[:len(run)]) != run || id[len(run)] != '.' {
		return 0, 0, false
	}
	rest := id[len(run)+1:]
	phase, rest, ok = atoiPrefix(rest)
	if !ok || len(rest) < 2 || rest[0] != '.' {
		return 0, 0, false
	}
	seq, rest, ok = atoiPrefix(rest[1:])
	if !ok || len(rest) != 0 {
		return 0, 0, false
	}
	return phase, seq, true
}

// atoiPrefix parses the leading decimal digits of b (at most 9).
func atoiPrefix(b []byte) (n int, rest []byte, ok bool) {
	i := 0
	for i < len(b) && i < 10 && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || i == 10 {
		return 0, b, false
	}
	return n, b[i:], true
}
