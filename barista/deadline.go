package barista

import (
	"context"
	"time"

	"cafe/contracts"
)

// Deadline fails a command whose deadline has passed with CodeExpired,
// without touching the device, and bounds everything after it by the
// command's deadline, capped at max from now (Config.MaxTimeout): however
// far away a deadline a message claims, no command holds a barista's slot
// longer. now is time.Now outside tests.
func Deadline(now func() time.Time, max time.Duration) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, cmd *Command) (Result, error) {
			t := now()
			if !t.Before(cmd.Meta.Deadline) {
				late := t.Sub(cmd.Meta.Deadline).Round(time.Millisecond)
				return fail(cmd, contracts.CodeExpired, "the deadline passed "+late.String()+" before a barista took the command; the device was not contacted"), nil
			}
			if limit := t.Add(max); cmd.Meta.Deadline.After(limit) {
				cmd.Meta.Deadline = limit
			}
			ctx, cancel := context.WithDeadline(ctx, cmd.Meta.Deadline)
			defer cancel()
			return next(ctx, cmd)
		}
	}
}
