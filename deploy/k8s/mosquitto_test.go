package k8s_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The brokers' pods read deploy/mosquitto's own files: the ConfigMap holds
// them byte for byte (kustomize generates it from those files; no copy
// exists to fall behind).
func TestMosquittoConfigIsDeploysOwn(t *testing.T) {
	f := load(t)
	cm := must(t, f.objs, "ConfigMap", configMapName(t, f, "cafe-mosquitto"))
	for _, file := range []string{"cafe.conf", "cafe.acl"} {
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

// render runs render.sh as the init containers do, on the real cafe.conf,
// and returns the config it wrote, or its error output.
func render(t *testing.T, role string, env ...string) (string, error) {
	t.Helper()
	dst := t.TempDir()
	cmd := exec.Command("sh", "base/mosquitto/render.sh", filepath.Join("..", "mosquitto"), dst, role)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
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

	edge, err := render(t, "edge", "CAFE_MQTT_CORE=cafe-mqtt-core:1883", "CAFE_BRIDGE_PASSWORD=pw", "HOSTNAME=cafe-mqtt-edge-1")
	if err != nil {
		t.Fatalf("render edge: %v: %s", err, edge)
	}
	bridge, ok := strings.CutPrefix(edge, core)
	if !ok {
		t.Fatal("the edge's config does not start with the core's")
	}
	for _, line := range []string{
		"connection cafe-core", "address cafe-mqtt-core:1883", "remote_clientid cafe-bridge-cafe-mqtt-edge-1",
		"remote_username cafe-admin", "remote_password pw", "try_private true", "cleansession false",
		"topic devices/+/commands/# in 1", "topic clients/+/results in 1",
		"topic devices/+/replies/# out 1", "topic devices/+/presence out 1",
	} {
		if !strings.Contains(bridge, "\n"+line+"\n") {
			t.Errorf("the edge's bridge lacks %q", line)
		}
	}
}

// An edge without what its bridge needs, or an unknown role, stops the
// init container with a message saying what is missing.
func TestRenderRefusesWhatItCannotDo(t *testing.T) {
	cases := []struct {
		role string
		env  []string
		want string
	}{
		{"edge", []string{"CAFE_BRIDGE_PASSWORD=pw", "HOSTNAME=e"}, "CAFE_MQTT_CORE"},
		{"edge", []string{"CAFE_MQTT_CORE=c:1883", "HOSTNAME=e"}, "CAFE_BRIDGE_PASSWORD"},
		{"leaf", nil, "want core or edge"},
	}
	for _, c := range cases {
		out, err := render(t, c.role, c.env...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("render %s with %v: %v %q, want an error naming %s", c.role, c.env, err, out, c.want)
		}
	}
}
