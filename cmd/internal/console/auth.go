package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

const (
	sessionCookie = "cafe_console"
	loginCookie   = "cafe_console_login" // double-submit token of the login form
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
	maxTokenBytes = 256
)

// cookie is a console cookie with the flags every one of them carries.
func (s *Server) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.tls}
}

// loginPage shows the login form with its double-submit token: the one
// this browser already has, else a fresh one (so two login tabs, or a
// page loaded twice, do not invalidate each other).
func (s *Server) loginPage(c echo.Context) error {
	token := randomToken()
	if ck, err := c.Cookie(loginCookie); err == nil && len(ck.Value) == len(token) {
		token = ck.Value
	}
	c.SetCookie(s.cookie(loginCookie, token, 600))
	return s.render(c, http.StatusOK, "login", page{CSRF: token, Next: safeNext(c.QueryParam("next")), Error: c.QueryParam("error")})
}

// login checks the operator's token and starts a session.
func (s *Server) login(c echo.Context) error {
	lc, err := c.Cookie(loginCookie)
	if err != nil || !same(lc.Value, c.FormValue(csrfField)) {
		return c.Redirect(http.StatusSeeOther, "/login?error=expired")
	}
	token := strings.TrimSpace(c.FormValue("token"))
	op, ok := s.registry().LookupOperator(token)
	if len(token) > maxTokenBytes || !ok {
		s.log.Warn("console login refused", "remote", c.RealIP())
		return c.Redirect(http.StatusSeeOther, "/login?error=token&next="+url.QueryEscape(safeNext(c.FormValue("next"))))
	}
	id, _ := s.sessions.start(op.ID)
	c.SetCookie(s.cookie(loginCookie, "", -1))
	c.SetCookie(s.cookie(sessionCookie, id, int(s.cfg.SessionTTL/time.Second)))
	s.log.Info("console login", "operator", op.ID, "remote", c.RealIP())
	return c.Redirect(http.StatusSeeOther, safeNext(c.FormValue("next")))
}

// logout ends the session (a POST with its CSRF token, like every action).
func (s *Server) logout(c echo.Context) error {
	if ck, err := c.Cookie(sessionCookie); err == nil {
		s.sessions.end(ck.Value)
	}
	c.SetCookie(s.cookie(sessionCookie, "", -1))
	return c.Redirect(http.StatusSeeOther, "/login")
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/pipeline"
	}
	return next
}

// requireSession lets a request through only with a live session of an
// operator the registry still has: a page without one is redirected to
// the login form, an API call gets 401. A POST must carry the session's
// CSRF token, or it gets 403.
func (s *Server) requireSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess, ok := s.session(c)
		if !ok {
			if strings.HasPrefix(c.Path(), "/api/") {
				return c.JSON(http.StatusUnauthorized, map[string]string{"error": "log in first: /login"})
			}
			return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
		}
		if c.Request().Method == http.MethodPost {
			got := c.Request().Header.Get(csrfHeader)
			if got == "" {
				got = c.FormValue(csrfField)
			}
			if !same(got, sess.csrf) {
				return c.JSON(http.StatusForbidden, map[string]string{"error": "missing or wrong CSRF token: reload the page"})
			}
		}
		c.Set("session", sess)
		return next(c)
	}
}

// session is the request's live session, if any.
func (s *Server) session(c echo.Context) (session, bool) {
	ck, err := c.Cookie(sessionCookie)
	if err != nil || len(ck.Value) > maxTokenBytes {
		return session{}, false
	}
	sess, ok := s.sessions.get(ck.Value)
	if !ok {
		return session{}, false
	}
	if _, still := s.registry().Operator(sess.operator); !still {
		s.sessions.end(ck.Value)
		return session{}, false
	}
	return sess, true
}

func current(c echo.Context) session { sess, _ := c.Get("session").(session); return sess }
