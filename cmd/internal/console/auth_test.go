package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRefusedWithoutLogin(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	for _, p := range []string{"/", "/pipeline", "/devices", "/dead", "/clients"} {
		resp, _ := get(t, c, tc.url+p)
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("GET %s: %d to %q, want 303 to /login", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/api/pipeline", "/api/devices", "/api/clients", "/api/dead", "/api/dead/x", "/api/events"} {
		if resp, _ := get(t, c, tc.url+p); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %d, want 401", p, resp.StatusCode)
		}
	}
	if resp := post(t, c, tc.url+"/api/dead/purge", url.Values{"all": {"true"}, "confirm": {"purge"}}); resp.StatusCode != http.StatusUnauthorized || tc.dead.purges.Load() != 0 {
		t.Errorf("anonymous purge: %d, %d purges", resp.StatusCode, tc.dead.purges.Load())
	}
}

func TestLogin(t *testing.T) {
	tc := startConsole(t)
	for name, token := range map[string]string{"wrong": "nope", "empty": "", "an app's token": "app-token", "oversized": strings.Repeat("x", 5000), "hash of the token": hexSum(opToken + "alice")} {
		c := browser(t)
		resp := logIn(t, tc, c, token)
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/login?error=token") {
			t.Errorf("%s: redirected to %q, want the login form with an error", name, loc)
		}
		if r, _ := get(t, c, tc.url+"/api/clients"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: API answers %d after a refused login", name, r.StatusCode)
		}
	}
	c := browser(t)
	resp := logIn(t, tc, c, opToken+"alice")
	if resp.Header.Get("Location") != "/devices" {
		t.Fatalf("login: redirected to %q, want /devices (next)", resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, k := range resp.Cookies() {
		if k.Name == sessionCookie {
			ck = k
		}
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict", ck)
	}
	if r, body := get(t, c, tc.url+"/api/clients"); r.StatusCode != http.StatusOK || !strings.Contains(body, `"app-1"`) || strings.Contains(body, hexSum("app-token")) {
		t.Errorf("clients after login: %d %s (want app-1, never its token hash)", r.StatusCode, body)
	}
}

func TestLoginFormNeedsItsCookie(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	resp := post(t, c, tc.url+"/login", url.Values{"csrf": {"forged"}, "token": {opToken + "alice"}})
	if !strings.HasPrefix(resp.Header.Get("Location"), "/login?error=expired") {
		t.Fatalf("login without the form's cookie: %q, want refused", resp.Header.Get("Location"))
	}
}

func TestPostsNeedCSRF(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	logIn(t, tc, c, opToken+"alice")
	csrf := sessionCSRF(t, tc, c)
	form := url.Values{"id": {"m1"}}
	for name, h := range map[string][]string{"none": nil, "wrong": {csrfHeader, "x" + csrf}} {
		if resp := post(t, c, tc.url+"/api/dead/replay", form, h...); resp.StatusCode != http.StatusForbidden {
			t.Errorf("replay with %s CSRF token: %d, want 403", name, resp.StatusCode)
		}
	}
	if tc.dead.replays.Load() != 0 {
		t.Fatal("a replay ran without its CSRF token")
	}
	if resp := post(t, c, tc.url+"/api/dead/replay", form, csrfHeader, csrf); resp.StatusCode != http.StatusOK || tc.dead.replays.Load() != 1 {
		t.Errorf("replay with the CSRF token: %d, %d replays", resp.StatusCode, tc.dead.replays.Load())
	}
	if resp := post(t, c, tc.url+"/api/dead/purge", url.Values{"id": {"m1"}}, csrfHeader, csrf); resp.StatusCode != http.StatusBadRequest || tc.dead.purges.Load() != 0 {
		t.Errorf("purge without confirmation: %d, %d purges", resp.StatusCode, tc.dead.purges.Load())
	}
	if resp := post(t, c, tc.url+"/api/dead/replay", url.Values{}, csrfHeader, csrf); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("replay choosing nothing: %d, want 400", resp.StatusCode)
	}
}

func TestSessionEnds(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	logIn(t, tc, c, opToken+"alice")
	csrf := sessionCSRF(t, tc, c)
	post(t, c, tc.url+"/logout", url.Values{"csrf": {csrf}})
	if r, _ := get(t, c, tc.url+"/api/clients"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", r.StatusCode)
	}
	logIn(t, tc, c, opToken+"alice")
	tc.reg.Store(regWith(t, "bob")) // alice removed from the registry
	if r, _ := get(t, c, tc.url+"/api/clients"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the operator was removed: %d, want 401", r.StatusCode)
	}
}

func TestHostileInput(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	logIn(t, tc, c, opToken+"alice")
	for _, q := range []string{"limit=100000", "limit=-1", "offset=x", "presence=maybe", "q=" + strings.Repeat("a", 200)} {
		if r, _ := get(t, c, tc.url+"/api/devices?"+q); r.StatusCode != http.StatusBadRequest {
			t.Errorf("devices?%.40s: %d, want 400", q, r.StatusCode)
		}
	}
	for _, q := range []string{"reason=bogus", "client=[", "older_than=soon", "older_than=-5m", "device=" + strings.Repeat("a", 600)} {
		if r, _ := get(t, c, tc.url+"/api/dead?"+q); r.StatusCode != http.StatusBadRequest {
			t.Errorf("dead?%.40s: %d, want 400", q, r.StatusCode)
		}
	}
	for in, want := range map[string]string{"/dead": "/dead", "//evil.example": "/pipeline", "https://evil.example": "/pipeline", "/\\evil": "/pipeline", "": "/pipeline"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventsNameADownSource(t *testing.T) {
	tc := startConsole(t)
	c := browser(t)
	logIn(t, tc, c, opToken+"alice")
	c.Timeout = 0
	resp, err := c.Get(tc.url + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	got := string(buf[:n])
	if !strings.Contains(got, "event: pipeline") || !strings.Contains(got, `"name":"RabbitMQ","up":false,"since":"2026-01-01T12:03:04Z"`) {
		t.Errorf("first event: %s", got)
	}
}
