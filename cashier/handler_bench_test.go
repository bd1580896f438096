package cashier_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/registry"
)

// Benchmarks of the cashier's handler end to end (routing, auth,
// entitlement, body, envelope, publish, 202), with a queue that confirms at
// once: what the cashier itself costs per submission, without RabbitMQ.
// They run only on demand:
//
//	go test -run '^$' -bench . -benchmem ./cashier/

// benchQueue confirms every publish at once and keeps nothing (the tests'
// fakeQueue records messages, which would be measured too).
type benchQueue struct{}

func (benchQueue) Publish(context.Context, string, string, amqp.Publishing) error { return nil }
func (benchQueue) Ready() bool                                                    { return true }

const benchToken = "bench-token"

func benchServer(b *testing.B) *cashier.Server {
	b.Helper()
	reg, err := registry.Parse(fmt.Appendf(nil, "clients:\n  - id: app-1\n    token_sha256: %s\n    devices: [\"lamp-*\"]\n"+brokertest.DevicesYAML("lamp-1"), hash(benchToken)))
	if err != nil {
		b.Fatal(err)
	}
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.ClientRate = 0 // no limit: the handler is measured, not 429s
	s, err := cashier.New(cfg, reg, benchQueue{}, contracts.DefaultTopology(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchBody(n int) []byte {
	req := func(i int) string {
		return `{"jsonrpc":"2.0","method":"echo","params":{"pad":"` + string(bytes.Repeat([]byte("x"), 110)) + `"},"id":"3fa9c1.1.` + strconv.Itoa(i) + `"}`
	}
	if n == 1 {
		return []byte(req(0))
	}
	body := []byte{'['}
	for i := range n {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, req(i)...)
	}
	return append(body, ']')
}

// reusableBody is a request body that can be rewound, so that building the
// request is not what is measured.
type reusableBody struct{ *bytes.Reader }

func (reusableBody) Close() error { return nil }

func benchSubmit(b *testing.B, n int) {
	s := benchServer(b)
	h := s.Handler()
	body := benchBody(n)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rb := reusableBody{bytes.NewReader(body)}
		r := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", nil)
		r.Header.Set("Authorization", "Bearer "+benchToken)
		r.Header.Set("Cafe-Timeout", "10s")
		r.ContentLength = int64(len(body))
		for pb.Next() {
			rb.Reset(body)
			r.Body = rb
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusAccepted {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

func BenchmarkSubmitSingle(b *testing.B) { benchSubmit(b, 1) }

func BenchmarkSubmitBatch10(b *testing.B) { benchSubmit(b, 10) }

// BenchmarkSubmitRefused is a request refused at the first check (401):
// what an unauthenticated flood costs (building the request included).
func BenchmarkSubmitRefused(b *testing.B) {
	h := benchServer(b).Handler()
	body := benchBody(1)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			b.Fatalf("status %d", w.Code)
		}
		_, _ = io.Copy(io.Discard, w.Body)
	}
}
