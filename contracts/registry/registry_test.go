package registry_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"cafe/contracts/registry"
)

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func TestParseRegistry(t *testing.T) {
	good := "clients:\n  - id: app-1\n    token_sha256: " + hash("secret-1") + "\n    devices: [\"lamp-*\", \"door-7\"]\n"
	r, err := registry.Parse([]byte(good))
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
	r, err := registry.Parse([]byte(doc))
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
		{"duplicate id", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n  - id: a\n    token_sha256: " + hash("y") + "\n    devices: [a]\n", "used by another client"},
		{"duplicate token", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n  - id: b\n    token_sha256: " + h + "\n    devices: [a]\n", "token_sha256 is also used"},
		{"negative rate", "clients:\n  - id: a\n    token_sha256: " + h + "\n    devices: [a]\n    rate: -1\n", "rate"},
		{"alias bomb", "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n", "not a valid registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestLoadRegistryFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := registry.Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "CAFE_CLIENTS_FILE") {
		t.Fatalf("missing file: got %v, want a hint about CAFE_CLIENTS_FILE", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, registry.MaxBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized file: got %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	_ = os.WriteFile(bad, []byte("clients: nope"), 0o600)
	if _, err := registry.Load(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("bad file: got %v, want the error to name the file", err)
	}
}

func TestParseDevices(t *testing.T) {
	doc := "clients:\n  - id: app-1\n    token_sha256: " + hash("t") + "\n    devices: [\"*\"]\n" +
		"devices:\n  - id: lamp-1\n    secret_sha256: " + hash("s1") + "\n  - id: lamp-2\n    secret_sha256: " + hash("s2") + "\n    generation: 3\n"
	r, err := registry.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	d, ok := r.Device("lamp-1")
	if !ok || d.Generation != 1 || d.SecretSHA256 != sha256.Sum256([]byte("s1")) {
		t.Fatalf("lamp-1: %+v %v; want generation 1 (absent) and its hash", d, ok)
	}
	if d, _ := r.Device("lamp-2"); d.Generation != 3 {
		t.Fatalf("lamp-2 generation %d, want 3", d.Generation)
	}
	if _, ok := r.Device("lamp-3"); ok {
		t.Fatal("an unregistered device was found")
	}
	if got := len(r.Devices()); got != 2 {
		t.Fatalf("%d devices listed, want 2", got)
	}
}

func TestParseDevicesRejectsBadInput(t *testing.T) {
	client := "clients:\n  - id: app-1\n    token_sha256: " + hash("t") + "\n    devices: [\"*\"]\n"
	dev := func(id, secret string, extra ...string) string {
		return "  - id: " + id + "\n    secret_sha256: " + secret + "\n" + strings.Join(extra, "")
	}
	for _, tc := range []struct{ name, devices, want string }{
		{"dot", dev(`"."`, hash("s")), "not . or .."},
		{"dot dot", dev(`".."`, hash("s")), "not . or .."},
		{"slash", dev("a/b", hash("s")), `id "a/b"`},
		{"wildcard", dev(`"+"`, hash("s")), `id "+"`},
		{"hash sign", dev(`"#"`, hash("s")), `id "#"`},
		{"too long", dev(strings.Repeat("d", 129), hash("s")), "devices[0]"},
		{"plain secret", dev("d1", "my-secret"), "secret_sha256"},
		{"a client's id", dev("app-1", hash("s")), "one namespace"},
		{"a service's name", dev("cafe-barista", hash("s")), "reserved"},
		{"twice", dev("d1", hash("s")) + dev("d1", hash("s2")), "used by another device"},
		{"negative generation", dev("d1", hash("s"), "    generation: -1\n"), "generation"},
		{"unknown field", dev("d1", hash("s"), "    secret: x\n"), "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.Parse([]byte(client + "devices:\n" + tc.devices))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestEditKeepsCommentsAndValidates(t *testing.T) {
	name := filepath.Join(t.TempDir(), "cafe", "registry.yaml")
	add := func(d *registry.Doc) error {
		return d.AddClient("app-1", sha256.Sum256([]byte("t")), []string{"lamp-*"}, 5, 0)
	}
	if err := registry.Edit(name, add); err != nil {
		t.Fatal(err)
	}
	if err := registry.Edit(name, add); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("adding a client twice: got %v", err)
	}
	if err := registry.Edit(name, func(d *registry.Doc) error { return d.AddDevice("lamp-1", sha256.Sum256([]byte("s")), 1) }); err != nil {
		t.Fatal(err)
	}
	// A device with a client's id would make the file invalid: refused, file untouched.
	before, _ := os.ReadFile(name)
	if err := registry.Edit(name, func(d *registry.Doc) error { return d.AddDevice("app-1", sha256.Sum256([]byte("s")), 1) }); err == nil {
		t.Fatal("a device with a client's id was written")
	}
	if after, _ := os.ReadFile(name); string(after) != string(before) {
		t.Fatal("a refused edit changed the file")
	}
	if err := registry.Edit(name, func(d *registry.Doc) error { return d.SetDevice("lamp-1", sha256.Sum256([]byte("s2")), 2) }); err != nil {
		t.Fatal(err)
	}
	r, err := registry.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := r.Device("lamp-1"); d.Generation != 2 || d.SecretSHA256 != sha256.Sum256([]byte("s2")) {
		t.Fatalf("after rotation: %+v", d)
	}
	if c, _ := r.Client("app-1"); c.Rate != 5 || !c.MayCommand("lamp-9") {
		t.Fatalf("client: %+v", c)
	}
	if err := registry.Edit(name, func(d *registry.Doc) error { return d.Remove("devices", "lamp-1") }); err != nil {
		t.Fatal(err)
	}
	if r, _ := registry.Load(name); len(r.Devices()) != 0 {
		t.Fatal("removed device still listed")
	}
	if data, _ := os.ReadFile(name); !strings.HasPrefix(string(data), "# cafe registry") {
		t.Fatalf("the file's leading comment was lost:\n%s", data)
	}
	if info, _ := os.Stat(name); info.Mode().Perm() != 0o600 {
		t.Fatalf("registry mode %v, want 0600", info.Mode().Perm())
	}
}

// Two writers at once lose nothing: each edit runs under the file's lock.
func TestConcurrentEditsLoseNothing(t *testing.T) {
	name := filepath.Join(t.TempDir(), "registry.yaml")
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := range 25 {
				id := fmt.Sprintf("d-%d-%d", w, i)
				if err := registry.Edit(name, func(d *registry.Doc) error { return d.AddDevice(id, sha256.Sum256([]byte(id)), 1) }); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	r, err := registry.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(r.Devices()); n != 50 {
		t.Fatalf("%d devices after 50 concurrent additions", n)
	}
}
