package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"cafe/contracts/registry"
)

func runCafe(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := operatorsCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func TestOperatorsAddListRemove(t *testing.T) {
	file := filepath.Join(t.TempDir(), "clients.yaml")
	out, err := runCafe(t, "add", "--file", file, "--id", "alice")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	reg, err := registry.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := reg.LookupOperator(token); !ok || o.ID != "alice" {
		t.Fatalf("the printed token does not log alice in: %q", token)
	}
	if _, err := runCafe(t, "add", "--file", file, "--id", "alice"); err == nil {
		t.Error("a second alice was added")
	}
	for _, bad := range []string{"a b", "", strings.Repeat("x", 100), "../x"} {
		if _, err := runCafe(t, "add", "--file", file, "--id", bad); err == nil {
			t.Errorf("operator id %q accepted", bad)
		}
	}
	if out, _ := runCafe(t, "list", "--file", file); strings.TrimSpace(out) != "alice" || strings.Contains(out, token) {
		t.Errorf("list: %q, want alice and never a token", out)
	}
	if _, err := runCafe(t, "remove", "--file", file, "alice"); err != nil {
		t.Fatal(err)
	}
	if out, _ := runCafe(t, "list", "--file", file); strings.TrimSpace(out) != "" {
		t.Errorf("list after remove: %q", out)
	}
}
