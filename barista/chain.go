package barista

// chain.go: the barista's work on one command as a chain of steps
// (Middleware), the types they pass along, and Chain, which composes them.
// The steps themselves are one per file: recover.go, deadline.go,
// presence.go, breaker.go, device.go.

import (
	"context"

	"cafe/contracts"
)

// Command is one command taken from the queue, decoded and re-validated.
type Command struct {
	Meta        contracts.CommandMeta
	Request     contracts.Request // Request.Raw is the app's bytes, sent to the device unchanged
	Redelivered bool              // RabbitMQ delivered it before (to this or another barista)

	headers map[string]any // the message's headers, checked: the result reuses their values (contracts.ResultHeaders)
}

// Result is how a command ended. Body is the JSON-RPC response for the app:
// the device's reply bytes, or an error response built by the pipeline. A
// one-way command has no Body: nothing is sent back.
type Result struct {
	Body    []byte
	Outcome contracts.Outcome
}

// Handler handles one command. A Result means the command is finished (with
// a reply or with a pipeline error for the app); an error means it could not
// be handled here and now (shutdown, panic) and goes back to the queue.
type Handler func(ctx context.Context, cmd *Command) (Result, error)

// Middleware wraps a Handler with one step of the barista's work.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one listed runs first.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// fail is the Result of a pipeline error for cmd: an error response to the
// app (or nothing, for a one-way command).
func fail(cmd *Command, code contracts.Code, reason string) Result {
	r := Result{Outcome: contracts.OutcomeOf(code)}
	if !cmd.Request.Notification() {
		r.Body = contracts.ErrorResponse(cmd.Request.ID, contracts.NewError(code,
			contracts.Detail{DeviceID: cmd.Meta.DeviceID, Reason: reason}))
	}
	return r
}
