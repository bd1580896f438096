package cashier

import "time"

// TuneDuplicates sets how many duplicate-check queries s may have in
// flight and how long a submission waits for one (dupInFlight and
// duplicateBudget unless told), for tests and benchmarks. Call it after
// UseRecords, before the first submission.
// A slots of 0 keeps dupInFlight.
func TuneDuplicates(s *Server, slots int, budget time.Duration) {
	if slots > 0 {
		s.dups.slots = slots
	}
	s.dups.budget = budget
}

// DupQueued is how many submissions wait for a duplicate-check query
// (queued while every slot was taken), those that gave up included until
// the next query is formed.
func DupQueued(s *Server) int {
	s.dups.mu.Lock()
	defer s.dups.mu.Unlock()
	return len(s.dups.waiting)
}
