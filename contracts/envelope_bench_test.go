package contracts_test

import (
	"bytes"
	"strconv"
	"testing"

	"cafe/contracts"
)

// Benchmarks of the envelope's hot paths; they run only on demand:
//
//	go test -run '^$' -bench . -benchmem ./contracts/
//
// The cashier parses every body with ParseBody into a pooled destination,
// and the barista re-checks every command with ParseRequest and every
// device reply with CheckReply. Validation scans the bytes: with a reused
// destination ParseBody must not allocate at all, and the benchmarks fail
// if it does (outside the race detector, which allocates of its own).

// benchRequest is a request of about 200 bytes, like `cafe bench` sends.
func benchRequest(id int) []byte {
	return []byte(`{"jsonrpc":"2.0","method":"echo","params":{"pad":"` + string(bytes.Repeat([]byte("x"), 110)) +
		`"},"id":"3fa9c1.1.` + strconv.Itoa(id) + `"}`)
}

func benchBatch(n int) []byte {
	body := []byte{'['}
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, benchRequest(i)...)
	}
	return append(body, ']')
}

func benchParseBody(b *testing.B, body []byte, want int) {
	b.Helper()
	dst := make([]contracts.Request, 0, 8)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		reqs, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, dst)
		if err != nil || len(reqs) != want {
			b.Fatalf("got %d requests, err %v; want %d", len(reqs), err, want)
		}
		dst = reqs
	}
	if raceEnabled {
		return
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _, _ = contracts.ParseBody(body, contracts.DefaultMaxBatch, dst) }); allocs != 0 {
		b.Fatalf("ParseBody with a reused destination: %.0f allocations per parse, want 0", allocs)
	}
}

func BenchmarkParseBodySingle(b *testing.B) { benchParseBody(b, benchRequest(42), 1) }

func BenchmarkParseBodyBatch10(b *testing.B) { benchParseBody(b, benchBatch(10), 10) }

// BenchmarkParseBodyFreshDestination is what a caller that does not reuse
// its slice pays (the cashier pools it).
func BenchmarkParseBodyFreshDestination(b *testing.B) {
	body := benchBatch(10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseBodyInvalid: a refused body builds its error object.
func BenchmarkParseBodyInvalid(b *testing.B) {
	body := []byte(`{"jsonrpc":"1.0","method":"echo","id":1}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil); err == nil {
			b.Fatal("no error")
		}
	}
}

func BenchmarkParseRequest(b *testing.B) {
	raw := benchRequest(42)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := contracts.ParseRequest(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckReply(b *testing.B) {
	reply := []byte(`{"jsonrpc":"2.0","id":"3fa9c1.1.42","result":{"pad":"` + string(bytes.Repeat([]byte("x"), 110)) + `"}}`)
	id := []byte(`"3fa9c1.1.42"`)
	b.SetBytes(int64(len(reply)))
	b.ReportAllocs()
	for b.Loop() {
		if err := contracts.CheckReply(reply, id); err != nil {
			b.Fatal(err)
		}
	}
}
