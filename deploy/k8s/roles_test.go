package k8s_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafe/barista"
	"cafe/caller"
	"cafe/caller/ledger"
	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/ops"
	"cafe/deploy/k8s"
)

// The roles' pods against the roles' own code: scaling, shutdown, probes, images.

// The KEDA ScaledObject sizes the barista Deployment by the commands
// queue, counting unacknowledged commands too, one pod at a time down.
func TestScaledObjectTargetsTheBaristas(t *testing.T) {
	f := load(t)
	so := must(t, f.objs, "ScaledObject", "cafe-barista")
	dep := must(t, f.objs, "Deployment", "cafe-barista")
	ta := must(t, f.objs, "TriggerAuthentication", "cafe-rabbitmq-management")
	checks := []struct {
		what      string
		got, want any
	}{
		{"scaleTargetRef.name", k8s.At(so, "spec", "scaleTargetRef", "name"), dep.Name()},
		{"trigger type", k8s.At(so, "spec", "triggers", 0, "type"), "rabbitmq"},
		{"trigger protocol (http counts unacked too)", k8s.At(so, "spec", "triggers", 0, "metadata", "protocol"), "http"},
		{"trigger mode", k8s.At(so, "spec", "triggers", 0, "metadata", "mode"), "QueueLength"},
		{"queue", k8s.At(so, "spec", "triggers", 0, "metadata", "queueName"), contracts.DefaultTopology().CommandsQueue()},
		{"authentication", k8s.At(so, "spec", "triggers", 0, "authenticationRef", "name"), ta.Name()},
		{"one pod at a time down", k8s.At(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "policies", 0, "value"), 1.0},
		{"up at once", k8s.At(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleUp", "stabilizationWindowSeconds"), 0.0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}
	lo, _ := k8s.At(so, "spec", "minReplicaCount").(float64)
	hi, _ := k8s.At(so, "spec", "maxReplicaCount").(float64)
	if lo < 1 || hi < lo {
		t.Errorf("replicas %v..%v: want 1 <= min <= max", lo, hi)
	}
	if v, _ := k8s.At(so, "spec", "triggers", 0, "metadata", "value").(string); v == "" || v == "0" {
		t.Errorf("trigger value %q: want a positive backlog per replica, as a string", v)
	}
}

// Each pod's termination grace outlasts what its program does on SIGTERM
// (the grace it is given, or its default, plus 5s to close its links; the
// cashier's drain delay and shutdown grace), so that a scale-down or a
// rollout does not kill it mid-command.
func TestTerminationGracesOutlastShutdown(t *testing.T) {
	f := load(t)
	const closeMargin = 5 * time.Second
	cases := []struct {
		deployment string
		settings   map[string]time.Duration // variable → default
	}{
		{"cafe-barista", map[string]time.Duration{barista.SettingGrace.Env: barista.Defaults().Grace}},
		{"cafe-caller", map[string]time.Duration{caller.SettingGrace.Env: caller.Defaults().Grace}},
		{"cafe-ledger", map[string]time.Duration{ledger.SettingGrace.Env: ledger.Defaults().Grace}},
		{"cafe-cashier", map[string]time.Duration{cashier.SettingDrainDelay.Env: cashier.Defaults().DrainDelay, cashier.SettingShutdownGrace.Env: cashier.Defaults().ShutdownGrace}},
	}
	for _, c := range cases {
		dep := must(t, f.objs, "Deployment", c.deployment)
		secs, ok := k8s.At(dep, "spec", "template", "spec", "terminationGracePeriodSeconds").(float64)
		if !ok {
			t.Errorf("%s sets no terminationGracePeriodSeconds", dep)
			continue
		}
		need := closeMargin
		ctr := container(t, dep, strings.TrimPrefix(dep.Name(), "cafe-"))
		for env, def := range c.settings {
			d := def
			if v, set := envOf(ctr, env); set {
				var err error
				if d, err = time.ParseDuration(v); err != nil {
					t.Fatalf("%s %s: %v", dep, env, err)
				}
			}
			need += max(d, def)
		}
		if got := time.Duration(secs) * time.Second; got < need {
			t.Errorf("%s: terminationGracePeriodSeconds %v, want at least %v", dep, got, need)
		}
	}
}

// Every role's probes use the ops routes cafe serves, on the port its
// CAFE_HTTP_ADDR listens on; the cashier is ready on /readyz.
func TestProbesAreTheOpsRoutes(t *testing.T) {
	f := load(t)
	for _, name := range []string{"cafe-cashier", "cafe-barista", "cafe-caller", "cafe-ledger"} {
		dep := must(t, f.objs, "Deployment", name)
		c := container(t, dep, strings.TrimPrefix(name, "cafe-"))
		addr, _ := envOf(c, ops.SettingAddr.Env)
		_, port, _ := strings.Cut(addr, ":")
		for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			if got := k8s.At(c, probe, "httpGet", "path"); got != path || !served(path) {
				t.Errorf("%s %s: path %v, want %s (contracts/ops)", dep, probe, got, path)
			}
			portName := k8s.At(c, probe, "httpGet", "port")
			if p := containerPort(c, portName); strconv.Itoa(p) != port {
				t.Errorf("%s %s: port %v is %d, but %s=%q", dep, probe, portName, p, ops.SettingAddr.Env, addr)
			}
		}
	}
}

func served(path string) bool {
	for _, p := range ops.Paths {
		if p == path {
			return true
		}
	}
	return false
}

func containerPort(c map[string]any, name any) int {
	ports, _ := c["ports"].([]any)
	for _, p := range ports {
		if k8s.At(p, "name") == name {
			n, _ := k8s.At(p, "containerPort").(float64)
			return int(n)
		}
	}
	return -1
}

// Every image of cafe's is one deploy/docker/Dockerfile builds: a folder
// of cmd/ (ROLE), or its mosquitto target.
func TestImagesAreBuiltByTheDockerfile(t *testing.T) {
	f := load(t)
	dockerfile, err := os.ReadFile("../docker/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range f.objs {
		for _, c := range k8s.Containers(o) {
			image := str(c["image"])
			name, ok := strings.CutPrefix(image, "ghcr.io/cafe/")
			if !ok {
				continue
			}
			name, _, _ = strings.Cut(name, ":")
			if name == "mosquitto" {
				if !strings.Contains(string(dockerfile), "AS mosquitto") {
					t.Errorf("%s: image %s, but the Dockerfile has no mosquitto target", o, image)
				}
				// Its init and reconciler containers run cafe as nonroot.
				if len(k8s.ProgramsOf(c)) > 0 && !strings.Contains(string(dockerfile), "/usr/local/bin/cafe") {
					t.Errorf("%s container %s runs cafe, which the Dockerfile's mosquitto image lacks", o, c["name"])
				}
				continue
			}
			if _, err := os.Stat("../../cmd/" + name); err != nil {
				t.Errorf("%s: image %s, but there is no cmd/%s for ROLE=%s", o, image, name, name)
			}
		}
	}
}

// cafe refuses a key file that others may read (identity.LoadKey: no
// group or other bits), and a Secret's files on Kubernetes belong to root,
// readable by the pod's group (fsGroup). So no container of cafe's may
// read a key (CAFE_AUTH_KEY_FILE, CAFE_SESSION_KEY_FILE) from a Secret
// volume: each reads a copy an init container made, mode 0400 or 0600,
// on an emptyDir.
func TestKeysAreReadFromPrivateCopies(t *testing.T) {
	f := load(t)
	if bad := keysOnSecrets(f.objs); len(bad) > 0 {
		t.Error(strings.Join(bad, "\n"))
	}
	objs := k8s.Clone(f.objs)
	c := container(t, must(t, objs, "Deployment", "cafe-cashier"), "cashier")
	for _, e := range c["env"].([]any) {
		if k8s.At(e, "name") == "CAFE_SESSION_KEY_FILE" {
			e.(map[string]any)["value"] = "/etc/cafe/session-src/session.key"
		}
	}
	c["volumeMounts"] = append(c["volumeMounts"].([]any), map[string]any{"name": "session-key-src", "mountPath": "/etc/cafe/session-src"})
	if len(keysOnSecrets(objs)) == 0 {
		t.Error("a cashier reading its session key straight from the Secret went unseen")
	}
}

// keysOnSecrets lists the containers that read a key file from anything
// but an emptyDir.
func keysOnSecrets(objs []k8s.Object) []string {
	var bad []string
	for _, o := range objs {
		vols := map[string]any{}
		vl, _ := k8s.At(o, "spec", "template", "spec", "volumes").([]any)
		for _, v := range vl {
			vols[str(k8s.At(v, "name"))] = v
		}
		for _, c := range k8s.Containers(o) {
			for _, env := range []string{"CAFE_AUTH_KEY_FILE", "CAFE_SESSION_KEY_FILE"} {
				path, set := envOf(c, env)
				if !set {
					continue
				}
				if vol := mountOf(c, path); vol == "" || k8s.At(vols[vol], "emptyDir") == nil {
					bad = append(bad, fmt.Sprintf("%s container %s: %s=%s is not on an emptyDir (volume %q)", o, c["name"], env, path, vol))
				}
			}
		}
	}
	return bad
}

// mountOf is the volume of c mounted over path (the longest mount path
// that holds it), or "".
func mountOf(c map[string]any, path string) string {
	best, vol := "", ""
	ms, _ := c["volumeMounts"].([]any)
	for _, m := range ms {
		mp := str(k8s.At(m, "mountPath"))
		if strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") && len(mp) > len(best) {
			best, vol = mp, str(k8s.At(m, "name"))
		}
	}
	return vol
}
