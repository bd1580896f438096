package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// Schemas validates objects offline, in three layers, each catching what
// the others let through:
//
//   - built-in kinds are decoded strictly into k8s.io/api's Go types: an
//     unknown (typo'd) field or a value of the wrong type fails;
//   - the same kinds and KEDA's are validated by the models of the npm
//     packages kubernetes-models and @kubernetes-models/keda (validate.mjs,
//     run with node): required fields, enums, formats, types;
//   - the operators' kinds (RabbitMQ Cluster and Messaging Topology
//     Operators, KEDA) against a JSON Schema made from the openAPIV3Schema
//     of their CRDs (validate/crds, pinned), made strict: an object schema
//     that lists its properties admits no others unless the CRD says
//     x-kubernetes-preserve-unknown-fields.
//
// A kind none of them knows is an error: nothing goes unchecked.
type Schemas struct {
	crd  map[string]*jsonschema.Schema // by apiVersion/kind
	node string                        // the folder of validate.mjs, its packages installed
}

// builtin are the built-in kinds cafe's manifests use, with their Go types.
var builtin = map[string]func() any{
	"v1/ConfigMap":                       func() any { return &corev1.ConfigMap{} },
	"v1/Namespace":                       func() any { return &corev1.Namespace{} },
	"v1/Secret":                          func() any { return &corev1.Secret{} },
	"v1/Service":                         func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                 func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":      func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy": func() any { return &networkingv1.NetworkPolicy{} },
}

// LoadSchemas compiles the CRDs in crdDir and checks that node can run the
// models in nodeDir (validate.mjs, with node_modules installed: see
// InstallModels).
func LoadSchemas(crdDir, nodeDir string) (*Schemas, error) {
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s (%v)", crdDir, err)
	}
	s := &Schemas{crd: map[string]*jsonschema.Schema{}, node: nodeDir}
	for _, f := range files {
		if err := s.addCRD(f); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
	}
	return s, nil
}

// crd is the part of a CustomResourceDefinition that says what it accepts.
type crd struct {
	Spec struct {
		Group string `json:"group"`
		Names struct {
			Kind string `json:"kind"`
		} `json:"names"`
		Versions []struct {
			Name   string `json:"name"`
			Schema struct {
				OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
			} `json:"schema"`
		} `json:"versions"`
	} `json:"spec"`
}

func (s *Schemas) addCRD(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var c crd
	if err := yaml.Unmarshal(raw, &c); err != nil {
		return err
	}
	for _, v := range c.Spec.Versions {
		id := c.Spec.Group + "/" + v.Name + "/" + c.Spec.Names.Kind
		doc, err := jsonValue(strict(v.Schema.OpenAPIV3Schema))
		if err != nil {
			return err
		}
		comp := jsonschema.NewCompiler()
		url := "crd:///" + id
		if err := comp.AddResource(url, doc); err != nil {
			return err
		}
		sch, err := comp.Compile(url)
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		s.crd[id] = sch
	}
	return nil
}

// strict turns an openAPIV3Schema into a JSON Schema that refuses unknown
// fields (as the API server's strict field validation does) and admits
// null where the CRD says nullable.
func strict(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			switch k {
			case "properties", "patternProperties", "definitions":
				props := map[string]any{}
				for name, p := range x.(map[string]any) {
					props[name] = strict(p)
				}
				out[k] = props
			default:
				out[k] = strict(x)
			}
		}
		_, hasProps := t["properties"]
		_, hasAdditional := t["additionalProperties"]
		if keep, _ := t["x-kubernetes-preserve-unknown-fields"].(bool); hasProps && !hasAdditional && !keep {
			out["additionalProperties"] = false
		}
		if n, _ := t["nullable"].(bool); n {
			if typ, ok := t["type"].(string); ok {
				out["type"] = []any{typ, "null"}
			}
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = strict(x)
		}
		return out
	}
	return v
}

// jsonValue is v as jsonschema wants it (numbers as json.Number).
func jsonValue(v any) (any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(raw))
}

// Validate checks every object in all three layers and returns one error
// per problem, each naming its object.
func (s *Schemas) Validate(objs []Object) []error { return s.ValidateSets([][]Object{objs})[0] }

// ValidateSets validates several sets of objects with one run of node
// (which takes most of the time), each set's errors apart.
func (s *Schemas) ValidateSets(sets [][]Object) [][]error {
	var all []Object
	for _, objs := range sets {
		all = append(all, objs...)
	}
	out := make([][]error, len(sets))
	modelled, err := s.models(all)
	if err != nil {
		for i := range out {
			out[i] = []error{err}
		}
		return out
	}
	for i, objs := range sets {
		out[i] = s.validate(objs, modelled[:len(objs)])
		modelled = modelled[len(objs):]
	}
	return out
}

func (s *Schemas) validate(objs []Object, modelled []modelResult) []error {
	var errs []error
	for i, o := range objs {
		id := o.APIVersion() + "/" + o.Kind()
		checked := false
		if mk, ok := builtin[id]; ok {
			checked = true
			if err := strictDecode(o, mk()); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", o, err))
			}
		}
		if sch, ok := s.crd[id]; ok {
			checked = true
			if err := validateCRD(sch, o); err != nil {
				errs = append(errs, fmt.Errorf("%s: CRD schema: %w", o, err))
			}
		}
		if m := modelled[i]; !m.Unknown {
			checked = true
			for _, e := range m.Errors {
				errs = append(errs, fmt.Errorf("%s: kubernetes-models: %s", o, e))
			}
		}
		if !checked {
			errs = append(errs, fmt.Errorf("%s: no schema knows %s (add its CRD to deploy/k8s/validate/crds)", o, id))
		}
	}
	return errs
}

func validateCRD(sch *jsonschema.Schema, o Object) error {
	v, err := jsonValue(o)
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// modelResult is what validate.mjs says of one object.
type modelResult struct {
	Index   int      `json:"index"`
	Unknown bool     `json:"unknown"`
	Errors  []string `json:"errors"`
}

// models runs validate.mjs on objs.
func (s *Schemas) models(objs []Object) ([]modelResult, error) {
	in, err := json.Marshal(unwrapped(objs))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("node", "validate.mjs")
	cmd.Dir = s.node
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("node validate.mjs in %s: %w: %s", s.node, err, strings.TrimSpace(stderr.String()))
	}
	var res []modelResult
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("node validate.mjs: %w", err)
	}
	if len(res) != len(objs) {
		return nil, fmt.Errorf("node validate.mjs answered for %d of %d objects", len(res), len(objs))
	}
	return res, nil
}

// unwrapped is objs with the line breaks taken out of every Secret's
// base64 data. kustomize wraps long values at 76 characters; the API
// server's base64 decoding ignores line breaks (Go's encoding/base64), but
// the models' "byte" format does not, and would refuse every long secret.
func unwrapped(objs []Object) []Object {
	out := Clone(objs)
	for _, o := range out {
		if data, ok := o["data"].(map[string]any); ok && o.Kind() == "Secret" {
			for k, v := range data {
				if s, ok := v.(string); ok {
					data[k] = strings.ReplaceAll(s, "\n", "")
				}
			}
		}
	}
	return out
}

// InstallModels installs the npm packages of nodeDir from its
// package-lock.json (npm ci) unless the versions it pins are installed.
func InstallModels(nodeDir string) error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not on PATH: install Node.js 20 or newer (apt-get install nodejs npm) to validate the manifests")
	}
	if installed(nodeDir) {
		return nil
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = nodeDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in %s: %w: %s", nodeDir, err, out)
	}
	return nil
}

// installed reports whether node_modules holds every version the lock file
// pins (npm writes the same entries to node_modules/.package-lock.json).
func installed(nodeDir string) bool {
	read := func(name string) (map[string]struct {
		Version string `json:"version"`
	}, bool) {
		raw, err := os.ReadFile(filepath.Join(nodeDir, name))
		if err != nil {
			return nil, false
		}
		var lock struct {
			Packages map[string]struct {
				Version string `json:"version"`
			} `json:"packages"`
		}
		if json.Unmarshal(raw, &lock) != nil {
			return nil, false
		}
		return lock.Packages, true
	}
	want, ok1 := read("package-lock.json")
	have, ok2 := read("node_modules/.package-lock.json")
	if !ok1 || !ok2 {
		return false
	}
	for name, p := range want {
		if name != "" && have[name].Version != p.Version {
			return false
		}
	}
	return true
}
