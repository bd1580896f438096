package k8s

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Programs are the environment variables each of cafe's programs reads
// (CAFE_...) and its flags ("--name"),
// by program: a binary ("cashier", "barista", "caller", "ledger") or a
// cafe subcommand ("cafe broker-auth", "cafe setup") or a script
// ("render.sh"). The tests fill it from the binaries' own --help (every
// flag names its variable) and from the scripts.
type Programs map[string]map[string]bool

// Lint checks what no schema can: that the objects fit together and fit
// cafe. Each problem is one error naming its object:
//
//   - every Secret and ConfigMap a pod, a KEDA TriggerAuthentication or an
//     operator's User names exists; so does every ScaledObject's target;
//   - every Service, PodDisruptionBudget and NetworkPolicy selects pods
//     that exist (the operator's RabbitMQ pods included), and so does every
//     pod selector of a NetworkPolicy peer in the same namespace; a port a
//     Service targets by name is one its pods have;
//   - every variable a container of cafe's gets (env, or the keys of an
//     envFrom Secret or ConfigMap) is one its programs read, and every flag
//     it gives a cafe subcommand is one that subcommand has;
//   - every container has CPU and memory requests and limits, and an image
//     with a tag other than latest.
func Lint(objs []Object, known Programs) []error {
	var errs []error
	pods := podsOf(objs)
	for _, o := range objs {
		errs = append(errs, lintRefs(objs, o)...)
		errs = append(errs, lintSelectors(pods, o)...)
		for _, c := range Containers(o) {
			errs = append(errs, lintContainer(objs, known, o, c)...)
		}
	}
	return errs
}

// lintRefs checks that what o names exists.
func lintRefs(objs []Object, o Object) []error {
	var errs []error
	need := func(kind, name, where string) {
		if name != "" && Find(objs, kind, name) == nil {
			errs = append(errs, fmt.Errorf("%s: %s names %s %q, which these manifests do not have", o, where, kind, name))
		}
	}
	switch o.Kind() {
	case "TriggerAuthentication":
		refs, _ := At(o, "spec", "secretTargetRef").([]any)
		for _, r := range refs {
			n, _ := At(r, "name").(string)
			need("Secret", n, "secretTargetRef")
		}
	case "User":
		n, _ := At(o, "spec", "importCredentialsSecret", "name").(string)
		need("Secret", n, "importCredentialsSecret")
	case "ScaledObject":
		n, _ := At(o, "spec", "scaleTargetRef", "name").(string)
		need("Deployment", n, "scaleTargetRef")
	}
	vols, _ := At(podSpec(o), "volumes").([]any)
	for _, v := range vols {
		n, _ := At(v, "secret", "secretName").(string)
		need("Secret", n, "volume")
		n, _ = At(v, "configMap", "name").(string)
		need("ConfigMap", n, "volume")
	}
	for _, c := range Containers(o) {
		from, _ := At(c, "envFrom").([]any)
		for _, f := range from {
			n, _ := At(f, "secretRef", "name").(string)
			need("Secret", n, "envFrom")
			n, _ = At(f, "configMapRef", "name").(string)
			need("ConfigMap", n, "envFrom")
		}
	}
	return errs
}

func podSpec(o Object) any { return At(o, "spec", "template", "spec") }

// Containers lists a pod template's containers, init containers first.
func Containers(o Object) []map[string]any {
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		cs, _ := At(podSpec(o), key).([]any)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// cafeImage matches the images deploy/docker/Dockerfile builds.
var cafeImage = regexp.MustCompile(`^ghcr\.io/cafe/([a-z]+):`)

// cafeSubcommand finds `cafe SUBCOMMAND` in a command line or script.
var cafeSubcommand = regexp.MustCompile(`(?:^|[\s;(|&"])cafe ([a-z][a-z-]*)`)

// ProgramsOf names the programs of cafe's a container runs: its command
// (cafe SUB), the cafe subcommands and scripts of an `sh -c` script, or
// the role its image is built for. None: not one of cafe's containers.
func ProgramsOf(c map[string]any) []string {
	cmd := words(At(c, "command"))
	args := words(At(c, "args"))
	image, _ := At(c, "image").(string)
	switch {
	case len(cmd) >= 2 && cmd[0] == "cafe":
		return []string{"cafe " + cmd[1]}
	case len(cmd) >= 2 && cmd[0] == "sh" && cmd[1] == "-c" || len(cmd) == 1 && cmd[0] == "sh":
		script := uncommented(strings.Join(append(cmd[min(2, len(cmd)):], args...), "\n"))
		var out []string
		for _, m := range cafeSubcommand.FindAllStringSubmatch(script, -1) {
			out = append(out, "cafe "+m[1])
		}
		if strings.Contains(script, "render.sh") {
			out = append(out, "render.sh")
		}
		sort.Strings(out)
		return slices.Compact(out)
	case len(cmd) == 0:
		if m := cafeImage.FindStringSubmatch(image); m != nil && m[1] != "mosquitto" {
			return []string{m[1]}
		}
	}
	return nil
}

// uncommented is a shell script without its comments (whole lines, and
// " # ..." at a line's end), so that prose is not taken for commands.
func uncommented(script string) string {
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines[i] = ""
		} else if before, _, found := strings.Cut(l, " # "); found {
			lines[i] = before
		}
	}
	return strings.Join(lines, "\n")
}

func words(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func lintContainer(objs []Object, known Programs, o Object, c map[string]any) []error {
	var errs []error
	name, _ := c["name"].(string)
	where := fmt.Sprintf("%s container %s", o, name)
	image, _ := c["image"].(string)
	if _, tag, ok := strings.Cut(image, ":"); !ok || tag == "" || tag == "latest" {
		errs = append(errs, fmt.Errorf("%s: image %q: name a tag (not latest)", where, image))
	}
	for _, r := range []string{"requests", "limits"} {
		for _, k := range []string{"cpu", "memory"} {
			if At(c, "resources", r, k) == nil {
				errs = append(errs, fmt.Errorf("%s: no resources.%s.%s", where, r, k))
			}
		}
	}
	progs := ProgramsOf(c)
	if len(progs) == 0 {
		return errs // not cafe's: its variables are its own
	}
	ok := map[string]bool{}
	for _, p := range progs {
		vars, found := known[p]
		if !found {
			errs = append(errs, fmt.Errorf("%s: runs %s, whose settings are not known", where, p))
		}
		for v := range vars {
			ok[v] = true
		}
	}
	for _, v := range envNames(objs, c) {
		if !ok[v] {
			errs = append(errs, fmt.Errorf("%s: %s is not a setting of %s", where, v, strings.Join(progs, ", ")))
		}
	}
	for _, call := range cafeCalls(c) {
		for _, flag := range call.flags {
			if !known[call.program]["--"+flag] {
				errs = append(errs, fmt.Errorf("%s: %s has no flag --%s", where, call.program, flag))
			}
		}
	}
	return errs
}

// call is one invocation of a cafe subcommand with the flags it is given.
type call struct {
	program string
	flags   []string
}

// flagWord finds the flags of a command line (--name or --name=value).
var flagWord = regexp.MustCompile(`(?:^|\s)--([a-z0-9][a-z0-9-]*)`)

// cafeCalls lists the cafe subcommands a container runs with their flags:
// its command and args, or each command line of its sh -c script
// (continued lines joined).
func cafeCalls(c map[string]any) []call {
	cmd := append(words(At(c, "command")), words(At(c, "args"))...)
	var lines []string
	if len(cmd) >= 2 && cmd[0] == "sh" && cmd[1] == "-c" {
		script := strings.ReplaceAll(uncommented(strings.Join(cmd[2:], "\n")), "\\\n", " ")
		lines = strings.Split(script, "\n")
	} else {
		lines = []string{strings.Join(cmd, " ")}
	}
	var out []call
	for _, line := range lines {
		m := cafeSubcommand.FindStringSubmatchIndex(line)
		if m == nil {
			continue
		}
		cl := call{program: "cafe " + line[m[2]:m[3]]}
		for _, f := range flagWord.FindAllStringSubmatch(line[m[1]:], -1) {
			cl.flags = append(cl.flags, f[1])
		}
		out = append(out, cl)
	}
	return out
}

// envNames lists the variables a container gets: env, and the keys of
// the Secrets and ConfigMaps of envFrom.
func envNames(objs []Object, c map[string]any) []string {
	var out []string
	env, _ := At(c, "env").([]any)
	for _, e := range env {
		n, _ := At(e, "name").(string)
		out = append(out, n)
	}
	from, _ := At(c, "envFrom").([]any)
	for _, f := range from {
		for kind, ref := range map[string]string{"Secret": "secretRef", "ConfigMap": "configMapRef"} {
			n, _ := At(f, ref, "name").(string)
			if src := Find(objs, kind, n); src != nil {
				out = append(out, Keys(src)...)
			}
		}
	}
	return out
}

// Keys lists the keys of a Secret's or ConfigMap's data.
func Keys(o Object) []string {
	var out []string
	for _, field := range []string{"data", "stringData"} {
		m, _ := At(o, field).(map[string]any)
		for k := range m {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
