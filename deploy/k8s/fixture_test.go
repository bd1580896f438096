package k8s_test

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"

	"cafe/contracts/identity"
	"cafe/contracts/local"
	"cafe/deploy/k8s"
)

const (
	overlay = "overlays/dev"
	crds    = "validate/crds"
	models  = "validate"
)

// fixture is what every test reads: the dev overlay rendered once, the
// schemas, and the settings of cafe's programs.
type fixture struct {
	objs     []k8s.Object
	schemas  *k8s.Schemas
	programs k8s.Programs
}

var (
	once    sync.Once
	shared  fixture
	loadErr error
)

func load(t *testing.T) fixture {
	t.Helper()
	once.Do(func() { shared, loadErr = newFixture() })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return fixture{k8s.Clone(shared.objs), shared.schemas, shared.programs}
}

func newFixture() (fixture, error) {
	objs, err := k8s.Render(overlay)
	if err != nil {
		return fixture{}, err
	}
	if err := k8s.InstallModels(models); err != nil {
		return fixture{}, err
	}
	schemas, err := k8s.LoadSchemas(crds, models)
	if err != nil {
		return fixture{}, err
	}
	programs, err := settingsOf(objs)
	if err != nil {
		return fixture{}, err
	}
	return fixture{objs, schemas, programs}, nil
}

// envInHelp finds the variable each flag names in --help ("(env CAFE_X)").
var envInHelp = regexp.MustCompile(`\(env (CAFE_[A-Z0-9_]+)\)`)

// flagInHelp finds each flag cobra lists in --help ("  -h, --help", "      --once").
var flagInHelp = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)

// scriptVar finds the variables a shell script reads.
var scriptVar = regexp.MustCompile(`\$\{?(CAFE_[A-Z0-9_]+)`)

// settingsOf asks each program the manifests run for the variables it
// reads: the binaries' and cafe subcommands' --help, where every flag
// names its variable (go run, side by side: Go caches the binaries it
// links, so only the first run builds); contracts/local's variables, which
// every cafe program reads to find its files; and the variables render.sh
// reads.
func settingsOf(objs []k8s.Object) (k8s.Programs, error) {
	runs := map[string][]string{} // program → go run arguments
	for _, role := range []string{"cashier", "barista", "caller", "ledger"} {
		runs[role] = []string{"cafe/cmd/" + role}
	}
	for _, o := range objs {
		for _, c := range k8s.Containers(o) {
			for _, p := range k8s.ProgramsOf(c) {
				if sub, ok := strings.CutPrefix(p, "cafe "); ok {
					runs[p] = []string{"cafe/cmd/cafe", sub}
				}
			}
		}
	}
	programs := k8s.Programs{}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for name, args := range runs {
		wg.Go(func() {
			vars, err := helpEnv(args)
			mu.Lock()
			defer mu.Unlock()
			programs[name], errs = vars, append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	script, err := os.ReadFile("base/mosquitto/render.sh")
	if err != nil {
		return nil, err
	}
	vars := map[string]bool{}
	for _, m := range scriptVar.FindAllStringSubmatch(string(script), -1) {
		vars[m[1]] = true
	}
	programs["render.sh"] = vars
	return programs, nil
}

// helpEnv is the set of variables and flags ("--name") `go run ARGS
// --help` names, with contracts/local's variables.
func helpEnv(args []string) (map[string]bool, error) {
	out, err := exec.Command("go", append(append([]string{"run"}, args...), "--help")...).CombinedOutput()
	if err != nil {
		return nil, &buildError{err, out}
	}
	vars := map[string]bool{local.EnvDir: true, local.EnvRegistry: true, local.EnvKey: true}
	for _, m := range envInHelp.FindAllStringSubmatch(string(out), -1) {
		vars[m[1]] = true
	}
	for _, m := range flagInHelp.FindAllStringSubmatch(string(out), -1) {
		vars["--"+m[1]] = true
	}
	return vars, nil
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(e.out) }

// devKey is the dev overlay's committed auth key. Read as text: a clone
// does not keep the file's mode 0600, which identity.LoadKey insists on
// for a real key.
func devKey() (identity.Key, error) {
	raw, err := os.ReadFile(overlay + "/secrets/auth.key")
	if err != nil {
		return identity.Key{}, err
	}
	return identity.KeyFromHex(string(raw))
}

// must finds the object of kind and name, or fails.
func must(t *testing.T, objs []k8s.Object, kind, name string) k8s.Object {
	t.Helper()
	o := k8s.Find(objs, kind, name)
	if o == nil {
		t.Fatalf("the overlay renders no %s %s", kind, name)
	}
	return o
}

// container is o's container called name, or fails.
func container(t *testing.T, o k8s.Object, name string) map[string]any {
	t.Helper()
	for _, c := range k8s.Containers(o) {
		if c["name"] == name {
			return c
		}
	}
	t.Fatalf("%s has no container %s", o, name)
	return nil
}

// envOf is the value of variable name in container c, and whether it is set there.
func envOf(c map[string]any, name string) (string, bool) {
	env, _ := c["env"].([]any)
	for _, e := range env {
		if k8s.At(e, "name") == name {
			v, _ := k8s.At(e, "value").(string)
			return v, true
		}
	}
	return "", false
}
