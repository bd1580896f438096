package cashier

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"cafe/contracts"
	"cafe/contracts/registry"
)

// Session is the answer to POST /v1/sessions: what an app needs to connect
// to the MQTT broker and read its results (the seeds' model: the API
// issues the session, the broker checks it). The password is derived from
// the cashier's session key, the app's id and its token's hash: the same on
// every call, it changes when the app's token is rotated (and the old one
// stops working). It does not expire on its own, so ExpiresAt is absent.
type Session struct {
	MQTTURL   string     `json:"mqtt_url"`
	Username  string     `json:"username"`
	Password  string     `json:"password"`
	ClientID  string     `json:"client_id"`
	Topic     string     `json:"results_topic"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// errNoSessions: this cashier was given no session key.
var errNoSessions = errors.New("this cashier issues no sessions: it has no session key (CAFE_SESSION_KEY_FILE, or the local auth key)")

// session handles POST /v1/sessions: the same bearer authentication as a
// command (401, 400 for two Authorization headers), and the client's rate.
func (s *Server) session(c echo.Context) error {
	dir := s.dir.Load()
	client, status, e := s.authenticate(c, dir)
	if e != nil {
		return s.fail(c, status, e)
	}
	if err := dir.allow(client, time.Now(), 1); err != nil {
		return s.fail(c, http.StatusTooManyRequests, err)
	}
	if !s.cfg.SessionKey.Valid() {
		return s.fail(c, http.StatusServiceUnavailable, contracts.NewError(contracts.CodeUnavailable, contracts.Detail{Reason: errNoSessions.Error()}))
	}
	body, err := json.Marshal(s.sessionOf(client))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store") // it holds a password
	s.m.requests.WithLabelValues("200").Inc()
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

func (s *Server) sessionOf(c *registry.Client) Session {
	return Session{
		MQTTURL:  s.cfg.SessionMQTTURL,
		Username: c.ID,
		Password: s.cfg.SessionKey.AppPassword(c.ID, c.TokenSHA256),
		ClientID: c.ID,
		Topic:    contracts.ResultsTopic(c.ID),
	}
}
