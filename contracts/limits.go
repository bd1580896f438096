package contracts

import "time"

// Size limits that several roles must agree on. Each is defined here once:
// the cashier refuses larger bodies, and the roles behind it treat a larger
// message in their queue as poison (something that did not come through the
// cashier, or a broken publisher).
const (
	// MaxBodyBytes is the largest command body (a request or a batch) the
	// pipeline carries: these are device commands, not uploads. The
	// cashier's configurable limit may be lower, never higher.
	MaxBodyBytes = 1 << 20

	// DefaultMaxReplyBytes bounds a device reply the barista accepts; a
	// larger one becomes a CodeBadDeviceReply error result.
	DefaultMaxReplyBytes = 256 << 10

	// MaxResultBytes is the largest result body the caller delivers: a
	// device reply (at most the barista's reply limit, itself at most
	// MaxBodyBytes) or a pipeline error response, which adds at most the
	// app's id and a short error object. The 64 KiB margin covers the
	// latter.
	MaxResultBytes = MaxBodyBytes + 64<<10

	// DefaultMaxBatch is the default largest batch.
	DefaultMaxBatch = 100
)

// Deadline limits. Every command has a deadline (the app's Cafe-Timeout or
// the cashier's default, counted from its arrival); these bound it.
const (
	// MaxTimeout is the longest deadline any setting may allow: half of
	// RabbitMQ's default consumer timeout (30 minutes), after which the
	// broker closes the channel of a consumer that holds a message unacked.
	MaxTimeout = 15 * time.Minute

	// DefaultMaxTimeout is the default largest Cafe-Timeout the cashier
	// accepts, and the default cap a barista puts on any command's
	// deadline (so a command with a deadline far away, however it got in
	// the queue, cannot hold a barista's slot for longer).
	DefaultMaxTimeout = 10 * time.Minute
)
