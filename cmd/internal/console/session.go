package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is one operator logged in with one browser.
type session struct {
	operator string
	csrf     string
	expires  time.Time
}

// sessions are kept in memory: a restart of the console logs everyone out.
type sessions struct {
	mu  sync.Mutex
	m   map[string]session
	ttl time.Duration
	now func() time.Time
}

func newSessions(ttl time.Duration) *sessions {
	return &sessions{m: map[string]session{}, ttl: ttl, now: time.Now}
}

// start opens a session for operator and returns its id.
func (s *sessions) start(operator string) (string, session) {
	id, sess := randomToken(), session{operator: operator, csrf: randomToken(), expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	s.m[id] = sess
	return id, sess
}

// get returns the live session with id.
func (s *sessions) get(id string) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if ok && !s.now().Before(sess.expires) {
		delete(s.m, id)
		return session{}, false
	}
	return sess, ok
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// sweep drops expired sessions (called with mu held).
func (s *sessions) sweep() {
	now := s.now()
	for id, sess := range s.m {
		if !now.Before(sess.expires) {
			delete(s.m, id)
		}
	}
}

// randomToken is 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// same compares two secrets in constant time; empty never matches.
func same(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
