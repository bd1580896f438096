package main

import (
	"os"
	"path/filepath"
	"testing"

	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/contracts/registry"
)

// The demo client is made when the registry has no clients: on a fresh
// machine `task up` runs `cafe setup`, which writes an empty registry before
// the first `cafe up`, and that must still end with a demo app to order with.
func TestEnsureDemo(t *testing.T) {
	t.Run("no registry", func(t *testing.T) {
		dir := demoDir(t)
		demo := mustDemo(t)
		wantDemo(t, dir, demo, true)
	})
	t.Run("the empty registry cafe setup writes", func(t *testing.T) {
		dir := demoDir(t)
		if err := registry.Edit(filepath.Join(dir, "clients.yaml"), func(*registry.Doc) error { return nil }); err != nil {
			t.Fatal(err)
		}
		wantDemo(t, dir, mustDemo(t), true)
	})
	t.Run("again: the same token, nothing made", func(t *testing.T) {
		dir := demoDir(t)
		first := mustDemo(t)
		again := mustDemo(t)
		if again.created || again.token != first.token {
			t.Fatalf("second cafe up: created=%v, token changed=%v; want the first token kept", again.created, again.token != first.token)
		}
		wantDemo(t, dir, again, false)
	})
	t.Run("a registry of the user's own", func(t *testing.T) {
		dir := demoDir(t)
		file := filepath.Join(dir, "clients.yaml")
		if err := registry.Edit(file, func(d *registry.Doc) error {
			return d.AddClient("app-1", identity.SHA256("t"), []string{"*"}, 0, 0)
		}); err != nil {
			t.Fatal(err)
		}
		demo := mustDemo(t)
		if demo.created || demo.token != "" {
			t.Fatalf("created=%v token=%q; want the user's registry left alone", demo.created, demo.token)
		}
		reg, err := registry.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := reg.Client(demoClientID); ok || reg.Len() != 1 {
			t.Fatalf("registry has %d clients (demo: %v); want only app-1", reg.Len(), ok)
		}
	})
	t.Run("a broken registry is an error, not overwritten", func(t *testing.T) {
		dir := demoDir(t)
		file := filepath.Join(dir, "clients.yaml")
		if err := os.WriteFile(file, []byte("clients: [{id: }\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ensureDemo(); err == nil {
			t.Fatal("ensureDemo accepted a broken registry")
		}
		if b, _ := os.ReadFile(file); string(b) != "clients: [{id: }\n" {
			t.Fatalf("broken registry rewritten to %q", b)
		}
	})
}

func demoDir(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv(local.EnvDir, dir)
	t.Setenv(local.EnvRegistry, "")
	return dir
}

func mustDemo(t *testing.T) demoClient {
	t.Helper()
	demo, err := ensureDemo()
	if err != nil {
		t.Fatal(err)
	}
	return demo
}

// wantDemo checks that the registry holds the demo client with the token
// ensureDemo returned, and that the token file says the same.
func wantDemo(t *testing.T, dir string, demo demoClient, created bool) {
	t.Helper()
	if demo.created != created || demo.token == "" {
		t.Fatalf("created=%v token=%q; want created=%v and a token", demo.created, demo.token, created)
	}
	reg, err := registry.Load(filepath.Join(dir, "clients.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := reg.Lookup(demo.token)
	if !ok || c.ID != demoClientID {
		t.Fatalf("the registry does not know the demo token (client %v, found %v)", c, ok)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "demo.token")); string(b) != demo.token+"\n" {
		t.Fatalf("demo.token holds %q; want the token", b)
	}
}
