package cashier

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"

	"cafe/contracts"
)

// duplicateBudget bounds the ledger lookup a submission waits for: past
// it, or with the database down, the command is accepted (the ledger is
// never in a command's critical path).
const duplicateBudget = 50 * time.Millisecond

// A database that stops answering would otherwise cost every submission
// the whole budget: after dupTrips lookups in a row fail, the check is
// skipped without asking for dupOpenFor, then one lookup tries again.
const (
	dupTrips   = 3
	dupOpenFor = 5 * time.Second
)

// newDupBreaker is the circuit breaker in front of the ledger lookups.
func newDupBreaker() *gobreaker.CircuitBreaker[[]string] {
	return gobreaker.NewCircuitBreaker[[]string](gobreaker.Settings{
		Name:        "duplicate-check",
		MaxRequests: 1,
		Timeout:     dupOpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= dupTrips },
	})
}

// duplicates refuses (409, CodeDuplicateID) a submission naming an id that
// the app already has a command pending with: accepted, recorded by the
// ledger, not done yet, and not refused (a command RabbitMQ nacked, whose
// copy the ledger recorded all the same, frees its id once the cashier's
// refusal is recorded: see refusal). The ledger writes within milliseconds, so a
// duplicate sent at once after the first may still be accepted; and with
// no ledger database, or one that does not answer within duplicateBudget,
// nothing is refused (counted in cafe_cashier_duplicate_checks_total:
// skipped, or open while the lookups are not even tried).
func (s *Server) duplicates(ctx context.Context, client string, reqs []contracts.Request) *contracts.Error {
	if s.records == nil {
		return nil
	}
	ids := make([]string, 0, len(reqs))
	for _, r := range reqs {
		if !r.Notification() {
			ids = append(ids, string(r.ID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	pending, err := s.dupBreaker.Execute(func() ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, duplicateBudget)
		defer cancel()
		return s.records.Pending(ctx, client, ids)
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		s.m.dupChecks.WithLabelValues("open").Inc()
		return nil
	case err != nil:
		s.m.dupChecks.WithLabelValues("skipped").Inc()
		return nil
	}
	if len(pending) == 0 {
		s.m.dupChecks.WithLabelValues("clear").Inc()
		return nil
	}
	s.m.dupChecks.WithLabelValues("conflict").Inc()
	return contracts.NewError(contracts.CodeDuplicateID, contracts.Detail{Field: "id",
		Reason: "a command with id " + strings.Join(pending, ", ") + " is still pending: wait for its result (GET " + CommandPath([]byte(pending[0])) + ") or use a new id"})
}
