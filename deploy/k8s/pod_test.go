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
// the dev registry log in; a wrong password does not. Then the tier: the
// core and an edge side by side, each in a network namespace of its own
// linked by a veth pair (198.18.0.0/30, the benchmarking range, inside
// namespaces made here), a device on the edge and a barista's login on the
// core: a command goes down the edge's bridge, logged in to the core as
// cafe-bridge, and the reply comes up. All
// of it inside a mount namespace of its own (unshare) with /etc, /var and
// /run overlaid, so the shared broker and this machine's files are
// untouched.
func TestBrokerPodsStart(t *testing.T) {
	for _, tool := range []string{"unshare", "setpriv", "mosquitto", "mosquitto_sub", "mosquitto_pub", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: cannot start the pods here (%v)", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, for the namespaces and mounts that keep this machine's files out of the pods' way")
	}
	f := load(t)
	key, err := devKey()
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, cachedCafe(t))
	core := h.pod(t, f, must(t, f.objs, "StatefulSet", "cafe-mqtt-core"))
	edge := h.pod(t, f, must(t, f.objs, "StatefulSet", "cafe-mqtt-edge"))
	barista, device := key.ServicePassword(identity.Barista), key.DeviceSecret("sim-1", 1)
	admin := key.ServicePassword(identity.Admin)
	h.sh.WriteString(`ip link set lo up
ip netns add edge
ip link add vcore type veth peer name vedge
ip link set vedge netns edge
ip addr add 198.18.0.1/30 dev vcore && ip link set vcore up
ip netns exec edge sh -c 'ip link set lo up && ip addr add 198.18.0.2/30 dev vedge && ip link set vedge up'
echo '198.18.0.1 cafe-mqtt-core' >>/etc/hosts
`)
	fmt.Fprintf(&h.sh, "unshare -m sh %s &\n%s\n", core, waitFor("", "cafe-admin", admin))
	fmt.Fprintf(&h.sh, "echo core admin: $(%s)\n", sub("", "cafe-admin", admin, "$SYS/broker/version", 1))
	fmt.Fprintf(&h.sh, "if %s >/dev/null 2>&1; then echo wrong password: accepted; else echo wrong password: refused; fi\n", sub("", "sim-2", "not-its-secret", "devices/sim-2/commands/#", 1))
	fmt.Fprintf(&h.sh, "ip netns exec edge unshare -m sh %s &\n%s\n", edge, waitFor("ip netns exec edge", "cafe-admin", admin))
	// The barista listens for the reply on the core, the device for its
	// command on the edge; each message is sent again every 0.2 s until it
	// arrived (or 8 s passed), since a subscriber's start is not observable.
	fmt.Fprintf(&h.sh, "%s >$T/reply &\nR=$!\n", sub("", "cafe-barista", barista, "devices/+/replies/b-k8s/#", 1))
	fmt.Fprintf(&h.sh, "ip netns exec edge %s >$T/command &\nC=$!\n", sub("", "sim-1", device, "devices/sim-1/commands/#", 1))
	fmt.Fprintf(&h.sh, "until [ -s $T/command ] || ! kill -0 $C 2>/dev/null; do %s -t devices/sim-1/commands/b-k8s/k1 -m '{\"jsonrpc\":\"2.0\",\"method\":\"echo\",\"id\":1}'; sleep 0.2; done\n", pub("", "cafe-barista-pub", "cafe-barista", barista))
	// The device has the command (its subscriber, holding its one client id, is gone): it replies.
	fmt.Fprintf(&h.sh, "wait $C || true\nuntil [ -s $T/reply ] || ! kill -0 $R 2>/dev/null; do ip netns exec edge %s -t devices/sim-1/replies/b-k8s/k1 -m '{\"jsonrpc\":\"2.0\",\"result\":1,\"id\":1}'; sleep 0.2; done\n", pub("", "sim-1", "sim-1", device))
	h.sh.WriteString("wait $R || true\necho command on the edge: $(cat $T/command)\necho reply on the core: $(cat $T/reply)\n")
	// The bridge's own state on the core, which only its cafe-bridge login may write.
	fmt.Fprintf(&h.sh, "echo bridge state on the core: $(%s)\n", sub("", "cafe-admin", admin, "cafe/bridges/cafe-mqtt-edge-0", 1))
	// Each pod's reconciler marks the end of its one round: wait (up to
	// 30 s) for both, or a loaded machine ends the test before the edge's
	// round has printed "ok" (seen once in CI).
	h.sh.WriteString("for i in $(seq 300); do [ -e $T/cafe-mqtt-core.reconciled ] && [ -e $T/cafe-mqtt-edge.reconciled ] && break; sleep 0.1; done\n")
	out := h.run(t)
	for _, want := range []string{
		"core admin: mosquitto version 2.0", "wrong password: refused",
		"cafe-mqtt-core reconciler: ok", "cafe-mqtt-edge reconciler: ok",
		`command on the edge: {"jsonrpc":"2.0","method":"echo","id":1}`,
		`reply on the core: {"jsonrpc":"2.0","result":1,"id":1}`,
		// the core's log (stdout): the edge's bridge logged in as cafe-bridge
		"as cafe-bridge-cafe-mqtt-edge-0 (p2, c0, k10, u'cafe-bridge')",
		"bridge state on the core: 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in the output:\n%s", want, out)
		}
	}
}

// host is the script of one test machine: overlays on /etc, /var and /run,
// the user nonroot, the cafe binary where the image has it, and the pods.
type host struct {
	dir string
	sh  strings.Builder
}

func newHost(t *testing.T, cafeBin string) *host {
	h := &host{dir: t.TempDir()}
	fmt.Fprintf(&h.sh, "set -eu\nT=%s\ntrap 'kill $(cat $T/*.pid) 2>/dev/null' EXIT\n", h.dir)
	for i, root := range []string{"/etc", "/var", "/run"} {
		fmt.Fprintf(&h.sh, "mkdir -p $T/ov%d/u $T/ov%d/w\nmount -t overlay overlay -o lowerdir=%s,upperdir=$T/ov%d/u,workdir=$T/ov%d/w %s\n", i, i, root, i, i, root)
	}
	h.sh.WriteString("echo 'nonroot:x:65532:65532::/nonexistent:/usr/sbin/nologin' >>/etc/passwd\necho 'nonroot:x:65532:' >>/etc/group\n")
	// The image's /usr/local/bin/cafe; /run is overlaid, and readable by 65532.
	fmt.Fprintf(&h.sh, "mkdir -p /run/cafe-bin\ninstall -m 0755 %s /run/cafe-bin/cafe\n", cafeBin)
	return h
}

// pod writes the script of sts's pod 0 (run in a mount namespace of its
// own): its volumes, its init container, Mosquitto in the background
// (its pid kept for the host to stop it), the reconciler once.
func (h *host) pod(t *testing.T, f fixture, sts k8s.Object) string {
	t.Helper()
	var sh strings.Builder
	dir := filepath.Join(h.dir, sts.Name())
	fmt.Fprintf(&sh, "set -eu\nT=%s\n", h.dir)
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
	fmt.Fprintf(&sh, "echo $! >$T/%s.pid\n", sts.Name())
	reconciler := container(t, sts, "broker-auth")
	run(reconciler, strings.Join(words(reconciler["command"]), " ")+" --once >/dev/null && echo "+sts.Name()+" reconciler: ok; touch $T/"+sts.Name()+".reconciled")
	sh.WriteString("wait\n")
	script := filepath.Join(h.dir, sts.Name()+".sh")
	if err := os.WriteFile(script, []byte(sh.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	return script
}

// run runs the host's script in a mount and network namespace of its own.
func (h *host) run(t *testing.T) string {
	t.Helper()
	script := filepath.Join(h.dir, "host.sh")
	if err := os.WriteFile(script, []byte(h.sh.String()), 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("timeout", "90", "unshare", "--mount", "--net", "--propagation", "private", "sh", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the pods did not come up: %v\n%s", err, out)
	}
	return string(out)
}

// sub is a mosquitto_sub of count messages as user (client id = user),
// in the namespace ns runs it in ("" for the host's).
func sub(ns, user, pw, topic string, count int) string {
	return strings.TrimSpace(fmt.Sprintf("%s mosquitto_sub -h 127.0.0.1 -p 1883 -i %s -u %s -P %s -t %s -q 1 -C %d -W 8", ns, user, user, shellQuote(pw), shellQuote(topic), count))
}

// pub is a mosquitto_pub as user with client id id (a device's must be
// its own id), in the namespace ns runs it in ("" for the host's).
func pub(ns, id, user, pw string) string {
	return strings.TrimSpace(fmt.Sprintf("%s mosquitto_pub -h 127.0.0.1 -p 1883 -i %s -u %s -P %s -q 1", ns, id, user, shellQuote(pw)))
}

// waitFor waits until user can log in to the broker of namespace ns.
func waitFor(ns, user, pw string) string {
	return fmt.Sprintf("for i in $(seq 80); do %s >/dev/null 2>&1 && break; sleep 0.1; done", sub(ns, user, pw, "$SYS/broker/version", 1))
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
