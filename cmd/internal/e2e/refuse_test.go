package e2e

import (
	"net/http"
	"strings"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// Whatever the cashier refuses (400, 401, 403, 413) it refuses whole:
// nothing reaches the commands queue. No barista runs, so anything
// published would stay there to be counted.
func TestRefusedRequestsPublishNothing(t *testing.T) {
	t.Parallel()
	const maxBody = 256
	p := newPipeline(t, setup{cashierEnv: []string{"CAFE_MAX_BODY_BYTES=256"}})
	a := pipelineApp(p)
	dev := p.devices + "-1"
	valid := `{"jsonrpc":"2.0","method":"echo","id":1}`
	big := `{"jsonrpc":"2.0","method":"echo","params":["` + strings.Repeat("x", maxBody) + `"],"id":1}`

	for _, tc := range []struct {
		name    string
		token   string // "" for none; the client's own unless set
		device  string
		body    string
		chunked bool // send without Content-Length
		headers []string
		status  int
		code    contracts.Code
	}{
		{name: "bad JSON", body: `{"jsonrpc":"2.0",`, status: 400, code: contracts.CodeParseError},
		{name: "not a request object", body: `"echo"`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "wrong jsonrpc version", body: `{"jsonrpc":"1.0","method":"echo","id":1}`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "no method", body: `{"jsonrpc":"2.0","id":1}`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "null id", body: `{"jsonrpc":"2.0","method":"echo","id":null}`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "batch with one bad request", body: `[` + valid + `,{"jsonrpc":"2.0","method":7,"id":2}]`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "batch with a repeated id", body: `[` + valid + `,` + valid + `]`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "empty batch", body: `[]`, status: 400, code: contracts.CodeInvalidRequest},
		{name: "bad device id", device: "bad*id", body: valid, status: 400, code: contracts.CodeInvalidRequest},
		{name: "device id too long", device: strings.Repeat("d", contracts.MaxDeviceIDLen+1), body: valid, status: 400, code: contracts.CodeInvalidRequest},
		{name: "bad Cafe-Timeout", body: valid, headers: []string{"Cafe-Timeout", "soon"}, status: 400, code: contracts.CodeInvalidRequest},
		{name: "no token", token: "-", body: valid, status: 401, code: contracts.CodeUnauthorized},
		{name: "unknown token", token: "not-a-token", body: valid, status: 401, code: contracts.CodeUnauthorized},
		{name: "device not entitled", device: "not-" + p.devices, body: valid, status: 403, code: contracts.CodeForbidden},
		{name: "device not registered", device: p.devices + "-nobody", body: valid, status: 404, code: contracts.CodeUnknownDevice},
		{name: "body over the limit", body: big, status: 413, code: contracts.CodeTooLarge},
		{name: "body over the limit, chunked", body: big, chunked: true, status: 413, code: contracts.CodeTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, device := tc.token, tc.device
			switch token {
			case "":
				token = p.client.token
			case "-":
				token = ""
			}
			if device == "" {
				device = dev
			}
			status, answer := a.send(t, token, device, tc.body, tc.chunked, tc.headers...)
			if status != tc.status {
				t.Errorf("got %d %s, want %d", status, answer, tc.status)
			}
			if e := rpcError(t, answer); e.Code != tc.code {
				t.Errorf("got error %d %q, want %d", e.Code, e.Message, tc.code)
			}
			if n := brokertest.QueueDepth(t, p.top.CommandsQueue()); n != 0 {
				t.Fatalf("commands queue holds %d after a refused request, want 0", n)
			}
		})
	}

	// The same check sees a command that was accepted.
	if status, answer := a.post(t, dev, valid); status != http.StatusAccepted {
		t.Fatalf("valid command: got %d %s, want 202", status, answer)
	}
	if n := brokertest.QueueDepth(t, p.top.CommandsQueue()); n != 1 {
		t.Fatalf("commands queue holds %d after one accepted command, want 1", n)
	}
}
