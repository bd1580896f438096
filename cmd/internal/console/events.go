package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// events streams server-sent events: "pipeline" (the PipelineView) and
// "devices" (the counts) every tick, until the browser goes away or the
// session ends.
func (s *Server) events(c echo.Context) error {
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx := c.Request().Context()
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, ok := s.session(c); !ok {
			return s.send(w, "logout", map[string]string{"error": "session ended"})
		}
		if err := s.send(w, "pipeline", s.view(ctx)); err != nil {
			return nil
		}
		if err := s.send(w, "devices", s.src.Devices.Counts()); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *Server) send(w *echo.Response, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return err
	}
	w.Flush()
	return nil
}
