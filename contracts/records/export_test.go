package records

import "context"

// MigrateTo runs the migrations up to version only, for tests of a later one.
func (s *Store) MigrateTo(ctx context.Context, version int) error { return s.migrateTo(ctx, version) }

// The read queries but Pending's, for tests of their plans.
const (
	CommandQuery = commandQuery
	ResultsAfter = resultsAfter
	ResultsSince = resultsSince
)
