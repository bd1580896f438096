package recordstest_test

import (
	"cafe/contracts/records/recordstest"
	"testing"
)

func TestServerStopsAndStarts(t *testing.T) {
	s := recordstest.NewServer(t)
	u := s.URL()
	recordstest.Exec(t, u, "SELECT 1")
	s.Stop("fast")
	s.Start()
	recordstest.Exec(t, u, "SELECT 1")
	s.Stop("immediate")
	s.Start()
	recordstest.Exec(t, u, "SELECT 1")
}
