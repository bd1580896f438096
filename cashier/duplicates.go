package cashier

import (
	"context"
	"strings"
	"time"

	"cafe/contracts"
)

// duplicateBudget bounds the ledger lookup a submission waits for: past
// it, or with the database down, the command is accepted (the ledger is
// never in a command's critical path).
const duplicateBudget = 50 * time.Millisecond

// duplicates refuses (409, CodeDuplicateID) a submission naming an id that
// the app already has a command pending with: accepted, recorded by the
// ledger, not done yet. The ledger writes within milliseconds, so a
// duplicate sent at once after the first may still be accepted; and with
// no ledger database, or one that does not answer within duplicateBudget,
// nothing is refused (counted in cafe_cashier_duplicate_checks_total).
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
	ctx, cancel := context.WithTimeout(ctx, duplicateBudget)
	defer cancel()
	pending, err := s.records.Pending(ctx, client, ids)
	if err != nil {
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
