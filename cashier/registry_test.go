package cashier_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cafe/cashier"
)

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func TestParseRegistry(t *testing.T) {
	good := "clients:\n  - id: app-1\n    token_sha256: " + hash("secret-1") + "\n    devices: [\"lamp-*\", \"door-7\"]\n"
	r, err := cashier.ParseRegistry([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := r.Lookup("secret-1")
	if !ok || c.ID != "app-1" {
		t.Fatalf("lookup by token: got %v %v", c, ok)
	}
	for _, tc := range []struct {
		device string
		may    bool
	}{
		{"lamp-1", true}, {"lamp-", true}, {"door-7", true}, {"door-70", false}, {"lam", false}, {"xlamp-1", false},
	} {
		if got := c.MayCommand(tc.device); got != tc.may {
			t.Errorf("MayCommand(%q) = %v, want %v", tc.device, got, tc.may)
		}
	}
	for _, token := range []string{"", "secret-2", "SECRET-1", hash("secret-1")} {
		if _, ok := r.Lookup(token); ok {
			t.Errorf("token %q accepted", token)
		}
	}
}

func TestParseRegistryAcceptsJSON(t *testing.T) {
	doc := `{"clients":[{"id":"app-1","token_sha256":"` + strings.ToUpper(hash("t")) + `","devices":["*"],"rate":5}]}`
	r, err := cashier.ParseRegistry([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup("t"); !ok {
		t.Fatal("upper-case hex hash not accepted")
	}
}

func TestParseRegistryRejectsBadInput(t *testing.T) {
	h := hash("x")
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"empty", ``, "empty"},
		{"no clients", `clients: []`, "no clients"},
		{"not yaml", "clients: [\n", "not a valid registry"},
		{"scalar", `42`, "not a valid registry"},
		{"unknown field", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n    devcies: [b]\n", "devcies"},
		{"bad id", "clients:\n  - id: a/b\n    token_sha256: " + h + "\n    devices: [a]\n", "id \"a/b\""},
		{"long id", "clients:\n  - id: " + strings.Repeat("a", 65) + "\n    token_sha256: " + h + "\n    devices: [a]\n", "clients[0]"},
		{"short hash", "clients:\n  - id: a\n    token_sha256: abcd\n    devices: [a]\n", "64 hex digits"},
		{"plain token instead of hash", "clients:\n  - id: a\n    token_sha256: my-secret-token\n    devices: [a]\n", "token_sha256"},
		{"no devices", "clients:\n  - id: a\n    token_sha256: " + h + "\n", "devices"},
		{"bad glob", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [\"lamp-[\"]\n", "glob"},
		{"wildcard topic chars", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [\"lamp/#\"]\n", "never contain"},
		{"duplicate id", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n  - id: a\n    token_sha256: " + hash("y") + "\n    devices: [a]\n", "also used by clients[0]"},
		{"duplicate token", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n  - id: b\n    token_sha256: " + h + "\n    devices: [a]\n", "token_sha256 is also used"},
		{"negative rate", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n    rate: -1\n", "rate"},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", "not a valid registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cashier.ParseRegistry([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadRegistryFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := cashier.LoadRegistry(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "CAFE_CLIENTS_FILE") {
		t.Fatalf("missing file: got %v, want a hint about CAFE_CLIENTS_FILE", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, cashier.MaxRegistryBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cashier.LoadRegistry(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized file: got %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("clients: nope"), 0o600)
	if _, err := cashier.LoadRegistry(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad file: got %v, want the error to name the file", err)
	}
}
