package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
)

// MaxPage bounds a page of devices or dead letters.
const MaxPage = 200

func (s *Server) apiPipeline(c echo.Context) error {
	return c.JSON(http.StatusOK, s.view(c.Request().Context()))
}

func (s *Server) apiDevices(c echo.Context) error {
	q := Query{Text: c.QueryParam("q"), Presence: c.QueryParam("presence"), Limit: 50}
	if len(q.Text) > contracts.MaxDeviceIDLen || !oneOf(q.Presence, "", Online, Offline, Unknown) {
		return bad(c, "q: at most 128 characters; presence: online, offline or unknown")
	}
	var err error
	if q.Offset, err = intParam(c, "offset", 0, 1<<30); err == nil {
		q.Limit, err = intParam(c, "limit", 50, MaxPage)
	}
	if err != nil {
		return bad(c, err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"counts": s.src.Devices.Counts(), "found": s.src.Devices.Search(q)})
}

// clientRow is what the clients page shows of an app: never its token.
type clientRow struct {
	ID      string   `json:"id"`
	Devices []string `json:"devices"`
	Rate    float64  `json:"rate"`
	Burst   int      `json:"burst"`
}

func (s *Server) apiClients(c echo.Context) error {
	rows := []clientRow{}
	for _, cl := range s.registry().Clients() {
		rows = append(rows, clientRow{ID: cl.ID, Devices: cl.Patterns, Rate: cl.Rate, Burst: cl.Burst})
	}
	return c.JSON(http.StatusOK, rows)
}

func (s *Server) apiDeadList(c echo.Context) error {
	f, err := filterOf(c)
	if err != nil {
		return bad(c, err.Error())
	}
	if f.Limit == 0 || f.Limit > MaxPage {
		f.Limit = MaxPage
	}
	letters, err := s.src.Dead.List(c.Request().Context(), f)
	if err != nil {
		return unavailable(c, err)
	}
	if letters == nil {
		letters = []deadletter.Letter{}
	}
	return c.JSON(http.StatusOK, letters)
}

func (s *Server) apiDeadShow(c echo.Context) error {
	l, body, err := s.src.Dead.Show(c.Request().Context(), c.Param("id"))
	if err != nil {
		return c.JSON(http.StatusNotFound, map[string]string{"error": err.Error()})
	}
	return c.JSON(http.StatusOK, map[string]any{"letter": l, "body": string(body)})
}

func (s *Server) apiDeadReplay(c echo.Context) error {
	f, err := s.chosen(c)
	if err != nil {
		return bad(c, err.Error())
	}
	dry := c.FormValue("dry_run") == "true"
	rep, outcomes, err := s.src.Dead.Replay(c.Request().Context(), f, dry, current(c).operator)
	if err != nil {
		return unavailable(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"dry_run": dry, "report": rep, "outcomes": outcomesJSON(outcomes)})
}

func (s *Server) apiDeadPurge(c echo.Context) error {
	f, err := s.chosen(c)
	if err == nil && c.FormValue("confirm") != "purge" {
		err = errors.New(`confirm: type "purge" to remove these letters for good`)
	}
	if err != nil {
		return bad(c, err.Error())
	}
	gone, err := s.src.Dead.Purge(c.Request().Context(), f, current(c).operator)
	if err != nil {
		return unavailable(c, err)
	}
	return c.JSON(http.StatusOK, map[string]any{"purged": len(gone)})
}

// chosen is the filter of a replay or purge, which must choose something
// (as `cafe dead` requires --all to act on everything).
func (s *Server) chosen(c echo.Context) (deadletter.Filter, error) {
	f, err := filterOf(c)
	if err == nil && f.Empty() && c.FormValue("all") != "true" {
		err = errors.New("choose letters: an id, reason, client, device, method or age (or all=true)")
	}
	return f, err
}

// filterOf reads the same filters as `cafe dead list`, from the query or form.
func filterOf(c echo.Context) (deadletter.Filter, error) {
	f := deadletter.Filter{Reason: c.FormValue("reason"), Client: c.FormValue("client"), Device: c.FormValue("device"), Method: c.FormValue("method")}
	if id := c.FormValue("id"); id != "" {
		f.IDs = strings.Fields(id)
	}
	var err error
	for name, p := range map[string]*time.Duration{"older_than": &f.OlderThan, "newer_than": &f.NewerThan} {
		if v := c.FormValue(name); v != "" && err == nil {
			if *p, err = time.ParseDuration(v); err != nil {
				err = errors.New(name + ": a duration such as 30m or 2h")
			}
		}
	}
	for _, v := range []string{f.Reason, f.Client, f.Device, f.Method, c.FormValue("id")} {
		if len(v) > 4*contracts.MaxDeviceIDLen {
			err = errors.New("a filter value is too long")
		}
	}
	if err != nil {
		return f, err
	}
	return f, f.Validate()
}

type outcomeJSON struct {
	ID       string `json:"id"`
	Replayed bool   `json:"replayed"`
	Refused  string `json:"refused,omitempty"`
}

func outcomesJSON(os []deadletter.Outcome) []outcomeJSON {
	out := make([]outcomeJSON, 0, len(os))
	for _, o := range os {
		j := outcomeJSON{ID: o.Letter.MessageID, Replayed: o.Replayed}
		if o.Refused != nil {
			j.Refused = o.Refused.Error()
		}
		out = append(out, j)
	}
	return out
}

func intParam(c echo.Context, name string, def, limit int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > limit {
		return 0, errors.New(name + ": want a number from 0 to " + strconv.Itoa(limit))
	}
	return n, nil
}

func oneOf(v string, set ...string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func bad(c echo.Context, msg string) error {
	return c.JSON(http.StatusBadRequest, map[string]string{"error": msg})
}

func unavailable(c echo.Context, err error) error {
	return c.JSON(http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
}
