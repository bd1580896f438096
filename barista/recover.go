package barista

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
)

// Recover turns a panic in the steps below into an error, so the command
// goes back to the queue instead of taking the worker down. A command that
// panics every time is dead-lettered by RabbitMQ once it reaches the
// queue's delivery limit.
func Recover(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, cmd *Command) (res Result, err error) {
			defer func() {
				if r := recover(); r != nil {
					log.Error("panic while handling a command; returning it to the queue",
						"client_id", cmd.Meta.ClientID, "device_id", cmd.Meta.DeviceID, "msg_id", cmd.Meta.MsgID,
						"panic", r, "stack", string(debug.Stack()))
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			return next(ctx, cmd)
		}
	}
}
