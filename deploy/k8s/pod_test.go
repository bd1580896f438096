package k8s_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cafe/contracts/identity"
	"cafe/deploy/k8s"
)

// Each broker's pod (the core, an edge), started as the kubelet would
// start it, on this machine's Mosquitto 2.0.11 (the version of the image):
// its volumes filled from the rendered ConfigMaps and Secrets, its init
// container's real script run as uid 65532, then Mosquitto with the
// rendered config, then the reconciler once. cafe-admin and a device of
// the dev registry log in; a wrong password does not; an edge starts its
// bridge (to a core it cannot reach here: it keeps trying). All of it
// inside a mount and network namespace of its own (unshare), with /etc,
// /var and /run overlaid, so the shared broker and this machine's files
// are untouched.
func TestBrokerPodsStart(t *testing.T) {
	for _, tool := range []string{"unshare", "setpriv", "mosquitto", "mosquitto_sub", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: cannot start the pods here (%v)", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, for the namespaces and mounts that keep this machine's files out of the pods' way")
	}
	f := load(t)
	cafeBin := cachedCafe(t)
	key, err := devKey()
	if err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]string{"cafe-mqtt-core": "", "cafe-mqtt-edge": "cafe-core (cafe-mqtt-core:1883)"} {
		t.Run(name, func(t *testing.T) {
			out := startPod(t, f, must(t, f.objs, "StatefulSet", name), cafeBin, key)
			for _, want := range []string{"admin: mosquitto version 2.0", "presence: {\"online\":true}", "wrong password: refused", "reconciler: ok", extra} {
				if !strings.Contains(out, want) {
					t.Errorf("want %q in the pod's output:\n%s", want, out)
				}
			}
		})
	}
}

// startPod runs sts's pod 0 as the test above says and returns its output.
func startPod(t *testing.T, f fixture, sts k8s.Object, cafeBin string, key identity.Key) string {
	t.Helper()
	dir := t.TempDir()
	var sh strings.Builder
	fmt.Fprintf(&sh, "set -eu\nT=%s\nip link set lo up\n", dir)
	for i, root := range []string{"/etc", "/var", "/run"} {
		fmt.Fprintf(&sh, "mkdir -p $T/ov%d/u $T/ov%d/w\nmount -t overlay overlay -o lowerdir=%s,upperdir=$T/ov%d/u,workdir=$T/ov%d/w %s\n", i, i, root, i, i, root)
	}
	sh.WriteString("echo 'nonroot:x:65532:65532::/nonexistent:/usr/sbin/nologin' >>/etc/passwd\necho 'nonroot:x:65532:' >>/etc/group\n")
	// The image's /usr/local/bin/cafe; /run is overlaid, and readable by 65532.
	fmt.Fprintf(&sh, "mkdir -p /run/cafe-bin\ninstall -m 0755 %s /run/cafe-bin/cafe\n", cafeBin)
	stageVolumes(t, f.objs, sts, dir, &sh)
	run := func(c map[string]any, argv string) {
		sh.WriteString("env -i PATH=/run/cafe-bin:/usr/bin:/bin:/usr/sbin:/sbin HOSTNAME=" + sts.Name() + "-0")
		env, _ := c["env"].([]any)
		for _, e := range env {
			fmt.Fprintf(&sh, " %s=%s", k8s.At(e, "name"), shellQuote(str(k8s.At(e, "value"))))
		}
		sh.WriteString(" setpriv --reuid 65532 --regid 65532 --clear-groups " + argv + "\n")
	}
	prepare := container(t, sts, "prepare")
	run(prepare, "sh -c "+shellQuote(str(k8s.At(prepare, "args", 0))))
	broker := container(t, sts, "mosquitto")
	run(broker, "mosquitto "+strings.Join(words(broker["args"]), " ")+" &")
	sh.WriteString("trap 'kill $! 2>/dev/null' EXIT\n")
	sub := func(user, pw, topic string) string {
		return fmt.Sprintf("mosquitto_sub -h 127.0.0.1 -p 1883 -i %s -u %s -P %s -t %s -C 1 -W 5", user, user, shellQuote(pw), shellQuote(topic))
	}
	admin := key.ServicePassword(identity.Admin)
	fmt.Fprintf(&sh, "for i in $(seq 50); do %s >/dev/null 2>&1 && break; sleep 0.1; done\n", sub("cafe-admin", admin, "$SYS/broker/version"))
	fmt.Fprintf(&sh, "echo admin: $(%s)\n", sub("cafe-admin", admin, "$SYS/broker/version"))
	// A device publishes its retained presence and reads it back as cafe-ops may.
	fmt.Fprintf(&sh, "mosquitto_pub -h 127.0.0.1 -p 1883 -i sim-1 -u sim-1 -P %s -t devices/sim-1/presence -r -q 1 -m '{\"online\":true}'\n", shellQuote(key.DeviceSecret("sim-1", 1)))
	fmt.Fprintf(&sh, "echo presence: $(%s)\n", sub("cafe-ops", key.ServicePassword(identity.Ops), "devices/sim-1/presence"))
	fmt.Fprintf(&sh, "if %s >/dev/null 2>&1; then echo wrong password: accepted; else echo wrong password: refused; fi\n", sub("sim-2", "not-its-secret", "devices/sim-2/commands/#"))
	reconciler := container(t, sts, "broker-auth")
	run(reconciler, strings.Join(words(reconciler["command"]), " ")+" --once >/dev/null && echo reconciler: ok")
	script := filepath.Join(dir, "pod.sh")
	if err := os.WriteFile(script, []byte(sh.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("timeout", "60", "unshare", "--mount", "--net", "--propagation", "private", "sh", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the pod did not come up: %v\n%s", err, out)
	}
	return string(out)
}

// stageVolumes writes, to the script, a tmpfs at each of the pod's mount
// paths (owned by 65532, as fsGroup makes them), filled as the kubelet
// fills its ConfigMap and Secret volumes.
func stageVolumes(t *testing.T, objs []k8s.Object, sts k8s.Object, dir string, sh *strings.Builder) {
	t.Helper()
	paths := map[string]string{} // volume → mount path, one for all containers
	for _, c := range k8s.Containers(sts) {
		ms, _ := c["volumeMounts"].([]any)
		for _, m := range ms {
			v, p := str(k8s.At(m, "name")), str(k8s.At(m, "mountPath"))
			if old, ok := paths[v]; ok && old != p {
				t.Fatalf("volume %s is mounted at %s and %s: this test gives each volume one path", v, old, p)
			}
			paths[v] = p
		}
	}
	vols := map[string]any{}
	vl, _ := k8s.At(sts, "spec", "template", "spec", "volumes").([]any)
	for _, v := range vl {
		vols[str(k8s.At(v, "name"))] = v
	}
	for vol, path := range paths {
		fmt.Fprintf(sh, "mkdir -p %s\nmount -t tmpfs tmpfs %s\nchown 65532:65532 %s\n", path, path, path)
		files, mode := volumeFiles(t, objs, vols[vol])
		for name, content := range files {
			staged := filepath.Join(dir, "vol", vol, name)
			if err := os.MkdirAll(filepath.Dir(staged), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(staged, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(sh, "cp %s %s/%s\nchown 0:65532 %s/%s\nchmod %o %s/%s\n", staged, path, name, path, name, mode, path, name)
		}
	}
}

// volumeFiles is what the kubelet puts in volume v: a ConfigMap's data
// (mode 0644), a Secret's decoded data (its defaultMode); nothing for an
// emptyDir or a claim.
func volumeFiles(t *testing.T, objs []k8s.Object, v any) (map[string]string, os.FileMode) {
	t.Helper()
	files := map[string]string{}
	if name, ok := k8s.At(v, "configMap", "name").(string); ok {
		cm := must(t, objs, "ConfigMap", name)
		for k, x := range cm["data"].(map[string]any) {
			files[k] = str(x)
		}
		return files, 0o644
	}
	if name, ok := k8s.At(v, "secret", "secretName").(string); ok {
		s := must(t, objs, "Secret", name)
		for _, k := range k8s.Keys(s) {
			files[k] = decoded(t, s, k)
		}
		mode, _ := k8s.At(v, "secret", "defaultMode").(float64)
		return files, os.FileMode(mode)
	}
	return nil, 0
}

// cachedCafe is the path of the cafe binary go run built (and Go caches).
func cachedCafe(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "run", "-exec", "echo", "cafe/cmd/cafe").Output()
	if err != nil {
		t.Fatalf("go run -exec echo cafe/cmd/cafe: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func words(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}
