package registry_test

import (
	"path/filepath"
	"strings"
	"testing"

	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

func TestOperators(t *testing.T) {
	doc := "clients: []\noperators:\n  - id: alice\n    token_sha256: " + hash("op-secret") + "\n"
	r, err := registry.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := r.LookupOperator("op-secret"); !ok || o.ID != "alice" {
		t.Fatalf("LookupOperator: got %v %v, want alice", o, ok)
	}
	for _, token := range []string{"", "op-secret ", hash("op-secret")} {
		if _, ok := r.LookupOperator(token); ok {
			t.Errorf("token %q accepted", token)
		}
	}
	if _, ok := r.Lookup("op-secret"); ok {
		t.Error("an operator's token is accepted as an app's bearer token")
	}
}

func TestOperatorsRejectBadInput(t *testing.T) {
	h := hash("x")
	for name, doc := range map[string]string{
		"bad id":        "operators:\n  - id: 'a b'\n    token_sha256: " + h + "\n",
		"no hash":       "operators:\n  - id: alice\n",
		"short hash":    "operators:\n  - id: alice\n    token_sha256: abc\n",
		"duplicate id":  "operators:\n  - id: alice\n    token_sha256: " + h + "\n  - id: alice\n    token_sha256: " + hash("y") + "\n",
		"shared token":  "operators:\n  - id: alice\n    token_sha256: " + h + "\n  - id: bob\n    token_sha256: " + h + "\n",
		"unknown field": "operators:\n  - id: alice\n    token: x\n    token_sha256: " + h + "\n",
		"not a list":    "operators: alice\n",
		"oversized id":  "operators:\n  - id: " + strings.Repeat("a", 200) + "\n    token_sha256: " + h + "\n",
	} {
		if _, err := registry.Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestEditOperators(t *testing.T) {
	file := filepath.Join(t.TempDir(), "clients.yaml")
	if err := registry.Edit(file, func(d *registry.Doc) error { return d.AddOperator("alice", identity.SHA256("tok")) }); err != nil {
		t.Fatal(err)
	}
	if err := registry.Edit(file, func(d *registry.Doc) error { return d.AddOperator("alice", identity.SHA256("tok2")) }); err == nil {
		t.Error("a second operator alice was added")
	}
	r, err := registry.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := r.LookupOperator("tok"); !ok || o.ID != "alice" {
		t.Fatalf("after AddOperator: %v %v", o, ok)
	}
	if err := registry.Edit(file, func(d *registry.Doc) error { return d.Remove("operators", "alice") }); err != nil {
		t.Fatal(err)
	}
	if r, _ = registry.Load(file); len(r.Operators()) != 0 {
		t.Errorf("after Remove: %d operators", len(r.Operators()))
	}
}
