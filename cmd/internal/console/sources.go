package console

import (
	"context"
	"time"

	"cafe/cmd/internal/deadletter"
	"cafe/cmd/internal/status"
)

// Queue is one queue as the pipeline page shows it.
type Queue struct {
	Name      string  `json:"name"`
	Depth     int     `json:"depth"`
	Ready     int     `json:"ready"`
	Unacked   int     `json:"unacked"`
	InRate    float64 `json:"in_rate"`  // messages/s published
	OutRate   float64 `json:"out_rate"` // messages/s acknowledged
	Consumers int     `json:"consumers"`
}

// Workers are the baristas or the callers: the consumers on their queue,
// and how many of the metrics endpoints given for them answer.
type Workers struct {
	Role      string `json:"role"` // baristas, callers
	Consumers int    `json:"consumers"`
	Endpoints int    `json:"endpoints"`
	Up        int    `json:"endpoints_up"`
}

// SourceState says whether one source could be read, and since when not.
type SourceState struct {
	Name  string    `json:"name"` // RabbitMQ, MQTT, registry, metrics
	Up    bool      `json:"up"`
	Since time.Time `json:"since,omitzero"` // when it went down
	Error string    `json:"error,omitempty"`
}

// PipelineView is everything the pipeline page shows at one moment.
type PipelineView struct {
	At        time.Time      `json:"at"`
	Queues    []Queue        `json:"queues"`
	Workers   []Workers      `json:"workers"`
	Breakers  *int           `json:"breakers_open,omitempty"`  // circuit breakers open over every barista; nil: no barista metrics
	DeadBy    map[string]int `json:"dead_by_reason,omitempty"` // nil: not reported by this source
	Commands  float64        `json:"commands_per_s"`           // commands accepted per second
	P99Millis float64        `json:"p99_ms"`                   // end-to-end p99 over the last interval (0: unknown)
	Ledger    *status.Ledger `json:"ledger,omitempty"`         // how far the command ledger is behind
	Sources   []SourceState  `json:"sources"`
}

// Pipeline is where the pipeline page's numbers come from: the one
// implementation `cafe status` uses too.
type Pipeline interface {
	Pipeline(ctx context.Context) PipelineView
}

// DeadLetters is what the dead-letters page does, with the same filters,
// checks and audit as `cafe dead`.
type DeadLetters interface {
	List(ctx context.Context, f deadletter.Filter) ([]deadletter.Letter, error)
	Show(ctx context.Context, id string) (deadletter.Letter, []byte, error)
	Replay(ctx context.Context, f deadletter.Filter, dryRun bool, operator string) (deadletter.Report, []deadletter.Outcome, error)
	Purge(ctx context.Context, f deadletter.Filter, operator string) ([]deadletter.Letter, error)
}
