package k8s_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"cafe/contracts/identity"
	"cafe/deploy/mosquitto"
)

// The brokers' pods read deploy/mosquitto's own files: the ConfigMap holds
// them byte for byte (kustomize generates it from those files; no copy
// exists to fall behind).
func TestMosquittoConfigIsDeploysOwn(t *testing.T) {
	f := load(t)
	cm := must(t, f.objs, "ConfigMap", configMapName(t, f, "cafe-mosquitto"))
	for _, file := range []string{"cafe.conf", "cafe.acl", "bridge.conf"} {
		want, err := os.ReadFile(filepath.Join("..", "mosquitto", file))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := cm["data"].(map[string]any)[file].(string); got != string(want) {
			t.Errorf("ConfigMap %s: %s differs from deploy/mosquitto/%s", cm.Name(), file, file)
		}
	}
}

// configMapName is the generated name (name-HASH) of ConfigMap name.
func configMapName(t *testing.T, f fixture, name string) string {
	t.Helper()
	for _, o := range f.objs {
		if o.Kind() == "ConfigMap" && strings.HasPrefix(o.Name(), name+"-") && len(o.Name()) == len(name)+11 {
			return o.Name()
		}
	}
	t.Fatalf("no ConfigMap generated from %s", name)
	return ""
}

// render runs render.sh as the init containers do, on the real cafe.conf
// and bridge.conf, with the cafe binary on its PATH (as in the image), and
// returns the config it wrote, or its error output.
func render(t *testing.T, role string, env ...string) (string, error) {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("sh", "base/mosquitto/render.sh", filepath.Join("..", "mosquitto"), dst, role)
	cmd.Env = append([]string{"PATH=" + filepath.Dir(cachedCafe(t)) + ":" + os.Getenv("PATH")}, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return string(out), err
	}
	conf, err := os.ReadFile(filepath.Join(dst, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	acl, _ := os.ReadFile(filepath.Join(dst, "cafe.acl"))
	if want, _ := os.ReadFile("../mosquitto/cafe.acl"); string(acl) != string(want) {
		t.Error("render.sh did not copy cafe.acl unchanged")
	}
	return string(conf), nil
}

// privateKey is a copy of the dev key, mode 0600 as cafe wants it (the
// init container's copy).
func privateKey(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(overlay + "/secrets/auth.key")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "auth.key")
	if err := os.WriteFile(name, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// render.sh changes only the listeners' addresses and the log destination;
// every other line of cafe.conf (logins, ACL, TLS, limits, persistence)
// reaches the pod as written. An edge gets the bridge to the core, one
// way per topic, QoS 1.
func TestRenderAdaptsCafeConfOnly(t *testing.T) {
	src, err := os.ReadFile("../mosquitto/cafe.conf")
	if err != nil {
		t.Fatal(err)
	}
	core, err := render(t, "core")
	if err != nil {
		t.Fatalf("render core: %v: %s", err, core)
	}
	changed := map[string]string{
		"listener 1883 127.0.0.1":                   "listener 1883",
		"listener 8883 127.0.0.1":                   "listener 8883",
		"log_dest file /var/log/mosquitto/cafe.log": "log_dest stdout",
	}
	want := strings.Split(string(src), "\n")
	got := strings.Split(core, "\n")
	if len(got) != len(want) {
		t.Fatalf("core config has %d lines, cafe.conf %d", len(got), len(want))
	}
	seen := 0
	for i := range want {
		if to, ok := changed[want[i]]; ok {
			seen++
			if got[i] != to {
				t.Errorf("line %d: %q became %q, want %q", i+1, want[i], got[i], to)
			}
		} else if got[i] != want[i] {
			t.Errorf("line %d: %q became %q: render.sh must leave it alone", i+1, want[i], got[i])
		}
	}
	if seen != len(changed) {
		t.Errorf("found %d of the %d lines render.sh adapts in cafe.conf: has cafe.conf changed?", seen, len(changed))
	}

}

// An edge's config is the core's with the tier's bridge appended: exactly
// what `cafe tier conf` appends to an edge's config on one machine
// (deploy/mosquitto/bridge.conf filled in), logged in to the core as
// cafe-bridge with the password the auth key derives for it. The pod is
// given the name and core address of the tier's edge-1, so that the two
// must be equal byte for byte.
func TestEdgeBridgeIsTheTiers(t *testing.T) {
	key, err := devKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := privateKey(t)
	core, err := render(t, "core")
	if err != nil {
		t.Fatalf("render core: %v: %s", err, core)
	}
	edge, err := render(t, "edge", "CAFE_MQTT_CORE=127.0.0.1:1893", "HOSTNAME=edge-1", "CAFE_AUTH_KEY_FILE="+keyFile)
	if err != nil {
		t.Fatalf("render edge: %v: %s", err, edge)
	}
	bridge, ok := strings.CutPrefix(edge, core+"\n")
	if !ok {
		t.Fatal("the edge's config does not start with the core's and an empty line")
	}
	want := tierBridge(t, keyFile)
	for _, p := range bridgeProblems(bridge, want) {
		t.Error(p)
	}
	if pw := "remote_password " + key.ServicePassword(identity.Bridge); !slices.Contains(settingLines(bridge), pw) {
		t.Error("the bridge's password is not the one the auth key derives for cafe-bridge")
	}
}

// tierBridge is the bridge `cafe tier conf` appends to edge-1's config
// (core 127.0.0.1:1893, its default), with the auth key keyFile.
func tierBridge(t *testing.T, keyFile string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(cachedCafe(t), "tier", "conf", "--dir", dir, "--edges", "1", "--auth-key-file", keyFile,
		"--clients-file", overlay+"/clients.yaml", "--mosquitto-user", "no-such-user-here")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cafe tier conf: %v: %s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(dir, "edge-1", "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// cafe tier conf writes cafe.conf's settings without blank lines, then
	// one, then the bridge.
	_, out, ok := strings.Cut(string(conf), "\n\n")
	if !ok {
		t.Fatal("cafe tier conf wrote edge-1 no bridge after an empty line")
	}
	return out
}

// bridgeProblems compares an edge's bridge with the tier's (want): every
// setting line the same, in the same order (topics, QoS, try_private,
// cleansession, ...), the login cafe-bridge and never cafe-admin, and
// each bridged topic one cafe.acl lets cafe-bridge read (in) or write
// (out) on the core.
func bridgeProblems(got, want string) []string {
	var out []string
	g, w := settingLines(got), settingLines(want)
	for i := range max(len(g), len(w)) {
		gl, wl := at(g, i), at(w, i)
		if gl != wl {
			out = append(out, fmt.Sprintf("bridge setting %d: %q, bridge.conf renders %q", i+1, gl, wl))
		}
	}
	if len(out) == 0 && got != want {
		out = append(out, "the bridge's comments differ from bridge.conf's")
	}
	user := ""
	for _, l := range g {
		if strings.Contains(l, "cafe-admin") {
			out = append(out, fmt.Sprintf("the bridge says %q: it must log in as cafe-bridge, not cafe-admin", l))
		}
		if u, ok := strings.CutPrefix(l, "remote_username "); ok {
			user = u
		}
	}
	if user != string(identity.Bridge) {
		out = append(out, fmt.Sprintf("the bridge logs in as %q, want %s", user, identity.Bridge))
	}
	return append(out, ungranted(g)...)
}

// ungranted are the bridge's topics cafe.acl does not grant cafe-bridge
// in their direction (in: read on the core; out: write).
func ungranted(settings []string) []string {
	grants := map[string]bool{}
	user := ""
	for _, l := range settingLines(mosquitto.ACL) {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "user":
			user = f[1]
		case len(f) == 3 && f[0] == "topic" && user == string(identity.Bridge):
			grants[f[1]+" "+f[2]] = true
		}
	}
	need := map[string][]string{"in": {"read"}, "out": {"write"}, "both": {"read", "write"}}
	var out []string
	for _, l := range settings {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "topic" {
			continue
		}
		for _, access := range need[f[2]] {
			if !grants[access+" "+f[1]] && !grants["readwrite "+f[1]] {
				out = append(out, fmt.Sprintf("the bridge's %q needs %s on %s, which cafe.acl does not grant cafe-bridge", l, access, f[1]))
			}
		}
		if need[f[2]] == nil {
			out = append(out, fmt.Sprintf("the bridge's %q: direction %q, want in, out or both", l, f[2]))
		}
	}
	return out
}

// settingLines are conf's lines that are not blank or comments.
func settingLines(conf string) []string {
	var out []string
	for l := range strings.Lines(conf) {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "(none)"
}

// The bridge check fails when an edge's bridge strays from the tier's:
// the admin's login, another QoS, no try_private, a clean session, a
// topic the ACL does not grant, a setting more.
func TestBridgeCheckFails(t *testing.T) {
	want := tierBridge(t, privateKey(t))
	for _, c := range []struct{ from, to, says string }{
		{"remote_username cafe-bridge", "remote_username cafe-admin", "not cafe-admin"},
		{"topic devices/+/commands/# in 1", "topic devices/+/commands/# in 0", `bridge.conf renders "topic devices/+/commands/# in 1"`},
		{"try_private true", "try_private false", `renders "try_private true"`},
		{"cleansession false", "cleansession true", `renders "cleansession false"`},
		{"topic devices/+/replies/# out 1", "topic devices/+/replies/# both 1", "needs read on devices/+/replies/#"},
		{"keepalive_interval 10", "keepalive_interval 10\nremote_password other", `"remote_password other", bridge.conf renders`},
	} {
		broken := strings.Replace(want, "\n"+c.from+"\n", "\n"+c.to+"\n", 1)
		if broken == want {
			t.Fatalf("bridge.conf has no line %q to break", c.from)
		}
		if p := strings.Join(bridgeProblems(broken, want), "\n"); !strings.Contains(p, c.says) {
			t.Errorf("%q instead of %q: problems %q, want one saying %q", c.to, c.from, p, c.says)
		}
	}
	if p := bridgeProblems(want, want); len(p) > 0 {
		t.Errorf("the tier's own bridge: %q", p)
	}
}

// An edge without what its bridge needs, or an unknown role, stops the
// init container with a message saying what is missing.
func TestRenderRefusesWhatItCannotDo(t *testing.T) {
	key := privateKey(t)
	cases := []struct {
		role string
		env  []string
		want string
	}{
		{"edge", []string{"HOSTNAME=e", "CAFE_AUTH_KEY_FILE=" + key}, "CAFE_MQTT_CORE"},
		{"edge", []string{"CAFE_MQTT_CORE=c:1883", "HOSTNAME=e", "CAFE_AUTH_KEY_FILE=" + filepath.Join(t.TempDir(), "none.key")}, "none.key"},
		{"edge", []string{"CAFE_MQTT_CORE=c:1883", "HOSTNAME=e f", "CAFE_AUTH_KEY_FILE=" + key}, `bridge name "e f"`},
		{"edge", []string{"CAFE_MQTT_CORE=c", "HOSTNAME=e", "CAFE_AUTH_KEY_FILE=" + key}, `core "c": want host:port`},
		{"leaf", nil, "want core or edge"},
	}
	for _, c := range cases {
		out, err := render(t, c.role, c.env...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("render %s with %v: %v %q, want an error naming %s", c.role, c.env, err, out, c.want)
		}
	}
}
