package console

import (
	"bytes"
	"net/http"

	"github.com/labstack/echo/v4"
)

// page is what a page's template is given.
type page struct {
	Name     string // pipeline, devices, dead, clients, login
	Operator string
	CSRF     string
	Next     string
	Error    string
}

func (s *Server) showPage(name string) echo.HandlerFunc {
	return func(c echo.Context) error {
		sess := current(c)
		return s.render(c, http.StatusOK, name, page{Name: name, Operator: sess.operator, CSRF: sess.csrf})
	}
}

func (s *Server) render(c echo.Context, status int, name string, p page) error {
	var b bytes.Buffer
	if err := s.pages.ExecuteTemplate(&b, name+".html", p); err != nil {
		return err
	}
	return c.HTMLBlob(status, b.Bytes())
}
