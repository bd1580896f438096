package barista

import (
	"context"
	"time"

	"cafe/contracts"
)

// Deadline fails a command whose deadline has passed with CodeExpired,
// without touching the device, and bounds everything after it by the
// command's deadline. now is time.Now outside tests.
func Deadline(now func() time.Time) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			if !now().Before(cmd.Meta.Deadline) {
				late := now().Sub(cmd.Meta.Deadline).Round(time.Millisecond)
				return fail(cmd, contracts.CodeExpired, "the deadline passed "+late.String()+" before a barista took the command; the device was not contacted"), nil
			}
			ctx, cancel := context.WithDeadline(ctx, cmd.Meta.Deadline)
			defer cancel()
			return next(ctx, cmd)
		}
	}
}
