// Package appclient is what an app does to get its results over MQTT, for
// cafe's own tools and tests that play an app (cafe order, cafe bench, the
// end-to-end tests): ask the cashier for a session (POST /v1/sessions with
// the app's bearer token) and connect with what it gives.
package appclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"cafe/contracts/mqttlink"
)

// Session is the answer of POST /v1/sessions.
type Session struct {
	MQTTURL  string `json:"mqtt_url"`
	Username string `json:"username"`
	Password string `json:"password"`
	ClientID string `json:"client_id"`
}

// Fetch asks the cashier at base (its base URL) for token's session.
func Fetch(ctx context.Context, hc *http.Client, base, token string) (Session, error) {
	var s Session
	u, err := url.JoinPath(base, "v1", "sessions")
	if err != nil {
		return s, fmt.Errorf("cashier URL %q: %w", base, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return s, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("cannot reach the cashier at %s: %w", base, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil {
		return s, err
	}
	if res.StatusCode != http.StatusOK {
		return s, &RefusedError{Status: res.Status, Body: strings.TrimSpace(string(body))}
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("POST /v1/sessions: %w", err)
	}
	return s, nil
}

// RefusedError is a session the cashier did not give.
type RefusedError struct{ Status, Body string }

func (e *RefusedError) Error() string {
	return "POST /v1/sessions: the cashier answered " + e.Status + ": " + e.Body
}

// MQTT is the configuration of the app's MQTT link: the session's broker
// (or brokerURL, if not empty), its user name and password, its client id.
func (s Session) MQTT(brokerURL string, clean bool) (mqttlink.Config, error) {
	raw := s.MQTTURL
	if brokerURL != "" {
		raw = brokerURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return mqttlink.Config{}, fmt.Errorf("mqtt url %q: %w", raw, err)
	}
	u.User = url.UserPassword(s.Username, s.Password)
	return mqttlink.Config{URL: u.String(), ClientID: s.ClientID, CleanSession: clean}, nil
}
