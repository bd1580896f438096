package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// When the MQTT result does not come, order prints the result the ledger
// recorded (GET /v1/commands/{id}), with the exit status of that result;
// with no record, or no result in it, "no result" stands.
func TestOrderFallsBackToTheRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   int // exit code, 0 for none
		out    string
	}{
		{"result recorded", 200, `{"status":"delivered","result":{"jsonrpc":"2.0","id":"o-1","result":{"hello":"cafe"}}}`, 0, `"hello": "cafe"`},
		{"error result recorded", 200, `{"status":"done","result":{"jsonrpc":"2.0","id":"o-1","error":{"code":-32001,"message":"device timeout"}}}`, exitErrorResult, "-32001"},
		{"still pending", 200, `{"status":"sent","history":[]}`, exitNoResult, ""},
		{"no record", 404, `{"jsonrpc":"2.0","id":null,"error":{"code":-32016,"message":"no such command"}}`, exitNoResult, ""},
		{"garbage", 200, `not json`, exitNoResult, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/commands/o-1" || r.Header.Get("Authorization") != "Bearer tok" {
					http.Error(w, "wrong request "+r.URL.Path, http.StatusBadRequest)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			o := orderOptions{url: srv.URL, token: "tok", id: "o-1"}
			var out, errOut bytes.Buffer
			noResult := &exitError{exitNoResult, errors.New("no result")}
			err := o.fallback(context.Background(), noResult, &out, &errOut)
			var ee *exitError
			code := 0
			if errors.As(err, &ee) {
				code = ee.code
			}
			if code != tc.want || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d (%v), stdout %q; want %d and %q", code, err, out.String(), tc.want, tc.out)
			}
		})
	}
}
