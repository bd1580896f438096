package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"cafe/cmd/internal/appclient"
)

// The HTTP attacks, on the real cashier: commands for the other tenant's
// devices (403) or unregistered ones (404), two Authorization headers
// (400), and A asking for B's MQTT session, judged by the cashier's
// answers. Every command carries a marker as its id: one that got
// through would also reach an app that never sent it.
func (iso *isolation) http(t *testing.T) {
	a, b := iso.a, iso.b
	for _, tc := range []struct {
		attack string
		from   *tenant
		device string
		want   int
	}{
		{"command another tenant's device", a, b.devices[0], http.StatusForbidden},
		{"command another tenant's device", a, iso.evil.id, http.StatusForbidden},
		{"command another tenant's device", b, a.devices[0], http.StatusForbidden},
		{"command another tenant's device", b, a.devices[1], http.StatusForbidden},
		{"command an unregistered device", a, iso.p.devices + "-99", http.StatusNotFound},
		{"command an unregistered device", b, iso.p.devices + "-88", http.StatusNotFound},
	} {
		m := iso.nextMarker()
		status, answer := tc.from.app.post(t, tc.device, `{"jsonrpc":"2.0","method":"echo","id":"`+m+`"}`, "Cafe-Timeout", "5s")
		iso.tally.record(t, "HTTP", tc.attack, status != tc.want, "answered "+http.StatusText(status)+": "+string(answer))
		if status == http.StatusNotFound && !strings.Contains(string(answer), tc.device) {
			t.Errorf("the %d does not name the device %s: %s", status, tc.device, answer)
		}
	}
	for _, path := range []string{"/v1/devices/" + a.devices[0] + "/commands", "/v1/sessions"} {
		m := iso.nextMarker()
		status, body := iso.raw(t, path, `{"jsonrpc":"2.0","method":"echo","id":"`+m+`"}`, "Bearer "+a.app.client.token, "Bearer "+b.app.client.token)
		iso.tally.record(t, "HTTP", "two Authorization headers", status != http.StatusBadRequest, path+" answered "+http.StatusText(status)+": "+body)
	}
	iso.foreignSession(t)
}

// foreignSession: A's token, however the request names B, gets A's
// session and never B's.
func (iso *isolation) foreignSession(t *testing.T) {
	t.Helper()
	a, b := iso.a.app.client, iso.b.app.client
	bPassword := iso.bApp().password
	for _, path := range []string{"/v1/sessions", "/v1/sessions?client_id=" + b.id + "&username=" + b.id, "/v1/sessions/" + b.id} {
		status, body := iso.raw(t, path, `{"client_id":"`+b.id+`","username":"`+b.id+`"}`, "Bearer "+a.token)
		var s appclient.Session
		_ = json.Unmarshal([]byte(body), &s)
		stolen := s.Username == b.id || s.ClientID == b.id || (s.Password != "" && s.Password == bPassword)
		iso.tally.record(t, "HTTP", "A's token asks for B's MQTT session", stolen, path+" answered "+http.StatusText(status)+": "+body)
		if status == http.StatusOK && s.Username != a.id {
			t.Errorf("%s with A's token gave the session of %q", path, s.Username)
		}
	}
}

// raw POSTs body to path of the cashier with each of authorization as an
// Authorization header of its own, and returns the status and body.
func (iso *isolation) raw(t *testing.T, path, body string, authorization ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, iso.p.url()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, v := range authorization {
		req.Header.Add("Authorization", v)
	}
	res, err := iso.a.app.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, string(out)
}
