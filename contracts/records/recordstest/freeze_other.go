//go:build !linux

package recordstest

// Freeze would stop the server's processes; it finds them in /proc, so
// elsewhere the test is skipped.
func (s *Server) Freeze() {
	s.t.Helper()
	s.t.Skip("Server.Freeze finds the server's processes in /proc: Linux only")
}

// Thaw resumes what Freeze stopped: nothing here.
func (s *Server) Thaw() {}
