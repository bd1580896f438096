package contracts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"cafe/contracts"
)

// envelopeCase is one wire case from testdata/envelope_cases.json.
type envelopeCase struct {
	Name     string    `json:"name"`
	Body     string    `json:"body"`
	Valid    bool      `json:"valid"`
	Requests int       `json:"requests"`
	IDs      []*string `json:"ids"`
	Batch    bool      `json:"batch"`
	Code     int       `json:"code"`
	Field    string    `json:"field"`
	Index    *int      `json:"index"`
}

func loadEnvelopeCases(t testing.TB) []envelopeCase {
	t.Helper()
	b, err := os.ReadFile("testdata/envelope_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []envelopeCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestParseBody(t *testing.T) {
	for _, tc := range loadEnvelopeCases(t) {
		t.Run(tc.Name, func(t *testing.T) {
			body := []byte(tc.Body)
			reqs, batch, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil)
			if !tc.Valid {
				var e *contracts.Error
				if !errors.As(err, &e) {
					t.Fatalf("got err %v, want a *contracts.Error with code %d", err, tc.Code)
				}
				if int(e.Code) != tc.Code {
					t.Fatalf("got code %d (%s), want %d", e.Code, e.Data, tc.Code)
				}
				var d contracts.Detail
				if len(e.Data) > 0 {
					if err := json.Unmarshal(e.Data, &d); err != nil {
						t.Fatalf("error data %s: %v", e.Data, err)
					}
				}
				if d.Field != tc.Field {
					t.Errorf("got field %q, want %q (%s)", d.Field, tc.Field, e.Data)
				}
				if (d.Index == nil) != (tc.Index == nil) || d.Index != nil && *d.Index != *tc.Index {
					t.Errorf("got index %v, want %v (%s)", d.Index, tc.Index, e.Data)
				}
				if d.Reason == "" {
					t.Errorf("error has no reason: %s", e.Data)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want valid", err)
			}
			if batch != tc.Batch {
				t.Errorf("got batch %v, want %v", batch, tc.Batch)
			}
			if len(reqs) != tc.Requests {
				t.Fatalf("got %d requests, want %d", len(reqs), tc.Requests)
			}
			for i, r := range reqs {
				want := tc.IDs[i]
				switch {
				case want == nil && !r.Notification():
					t.Errorf("request %d: got id %s, want a notification", i, r.ID)
				case want != nil && string(r.ID) != *want:
					t.Errorf("request %d: got id %s, want %s", i, r.ID, *want)
				}
				// The raw slice must be the request's bytes as sent, from the body itself.
				if !bytes.Contains(body, r.Raw) || !json.Valid(r.Raw) || r.Raw[0] != '{' {
					t.Errorf("request %d: raw %q is not a request object cut from the body", i, r.Raw)
				}
				if len(r.Method) == 0 {
					t.Errorf("request %d: no method", i)
				}
			}
		})
	}
}

func TestParseBodyRejectsInvalidUTF8(t *testing.T) {
	body := []byte("{\"jsonrpc\":\"2.0\",\"method\":\"\xff\",\"id\":1}")
	_, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil)
	if !errors.Is(err, contracts.CodeParseError) {
		t.Fatalf("got %v, want a parse error", err)
	}
}

func TestParseBodyBatchLimit(t *testing.T) {
	one := `{"jsonrpc":"2.0","method":"m"}`
	for _, tc := range []struct {
		name  string
		n     int
		valid bool
	}{
		{"at the limit", 3, true},
		{"over the limit", 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "[" + strings.Repeat(one+",", tc.n-1) + one + "]"
			reqs, _, err := contracts.ParseBody([]byte(body), 3, nil)
			if tc.valid && (err != nil || len(reqs) != tc.n) {
				t.Fatalf("got %d requests, err %v; want %d", len(reqs), err, tc.n)
			}
			if !tc.valid && !errors.Is(err, contracts.CodeInvalidRequest) {
				t.Fatalf("got %v, want invalid request", err)
			}
		})
	}
}

func TestParseBodyReusesDestination(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector adds allocations of its own; this counts the parser's")
	}
	body := []byte(`[{"jsonrpc":"2.0","method":"a","id":1},{"jsonrpc":"2.0","method":"b","id":"x"}]`)
	dst := make([]contracts.Request, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		reqs, _, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, dst)
		if err != nil || len(reqs) != 2 {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("valid batch: %.0f allocations per parse, want 0", allocs)
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want contracts.Code // 0: valid
	}{
		{"valid", `{"jsonrpc":"2.0","method":"m","id":1}`, 0},
		{"array is not a request", `[{"jsonrpc":"2.0","method":"m","id":1}]`, contracts.CodeInvalidRequest},
		{"garbage", `\x00\x01`, contracts.CodeParseError},
		{"empty", ``, contracts.CodeParseError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := contracts.ParseRequest([]byte(tc.raw))
			if tc.want == 0 && err != nil {
				t.Fatalf("got %v, want valid", err)
			}
			if tc.want != 0 && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzParseBody(f *testing.F) {
	for _, tc := range loadEnvelopeCases(f) {
		f.Add([]byte(tc.Body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, batch, err := contracts.ParseBody(body, 10, nil)
		if err != nil {
			var e *contracts.Error
			if !errors.As(err, &e) || (e.Code != contracts.CodeParseError && e.Code != contracts.CodeInvalidRequest) {
				t.Fatalf("error %v is not a parse or invalid-request error", err)
			}
			return
		}
		if len(reqs) == 0 || len(reqs) > 10 || (!batch && len(reqs) != 1) {
			t.Fatalf("got %d requests (batch %v)", len(reqs), batch)
		}
		for _, r := range reqs {
			// Whatever passed must pass again on its own, and be what a
			// standard decoder reads as a JSON-RPC 2.0 request with that id.
			again, err := contracts.ParseRequest(r.Raw)
			if err != nil {
				t.Fatalf("request %q passed in the body but not alone: %v", r.Raw, err)
			}
			if !bytes.Equal(again.ID, r.ID) {
				t.Fatalf("id %q alone, %q in the body", again.ID, r.ID)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.Raw, &m); err != nil {
				t.Fatalf("accepted request does not decode: %v", err)
			}
			var v string
			if json.Unmarshal(m["jsonrpc"], &v) != nil || v != "2.0" {
				t.Fatalf("accepted request has jsonrpc %s", m["jsonrpc"])
			}
			if r.ID != nil && !bytes.Equal(bytes.TrimSpace(m["id"]), r.ID) {
				t.Fatalf("decoder reads id %s, validator %s", m["id"], r.ID)
			}
			if r.ID == nil && m["id"] != nil {
				t.Fatalf("decoder reads id %s in a notification", m["id"])
			}
		}
	})
}
