package contracts_test

// These tests keep openapi.yaml and asyncapi.yaml honest: what they say
// about codes, limits, routes, topics and payloads is checked against the
// code that enforces it, and every example is run through that code. When a
// test here fails, either the code changed a public contract (update the
// spec, and tell the app and device authors) or the spec was wrong.
//
// The examples are also checked against the specs' own schemas by a small
// JSON Schema evaluator. It knows only the keywords these specs use and fails
// on any other, so a constraint is never silently skipped.
//
// The tests are split by concern:
//
//	specs_test.go           loading the specs, $refs, what both specs share
//	specs_codes_test.go     error codes against contracts/errors.go
//	specs_limits_test.go    limits and identifier patterns against the code
//	specs_openapi_test.go   the route and every example, against the cashier
//	specs_asyncapi_test.go  topics, operations and payloads, against contracts
//	specs_schema_test.go    the JSON Schema evaluator and its own test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// ---------------------------------------------------------------------------
// Loading the specs

// spec is a parsed spec file: plain JSON-like values (map[string]any,
// []any, string, bool, nil, and json.Number, which keeps every number's
// literal, so 19-digit limits stay exact).
type spec struct {
	name string
	root map[string]any
}

func loadSpec(t *testing.T, file string) spec {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	v, err := nodeValue(&doc)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	root, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: top level is not a mapping", file)
	}
	return spec{name: file, root: root}
}

func nodeValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		return nodeValue(n.Content[0])
	case yaml.AliasNode:
		return nodeValue(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := m[k]; dup {
				return nil, fmt.Errorf("line %d: key %q twice", n.Content[i].Line, k)
			}
			v, err := nodeValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := nodeValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	}
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		err := n.Decode(&b)
		return b, err
	case "!!int", "!!float":
		if !json.Valid([]byte(n.Value)) {
			return nil, fmt.Errorf("line %d: number %q is not written as JSON writes it", n.Line, n.Value)
		}
		return json.Number(n.Value), nil
	case "!!str":
		return n.Value, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML tag %s", n.Line, n.ShortTag())
}

// at walks a path of keys (and decimal indexes) from v; it fails the test
// when something on the way is missing.
func at(t *testing.T, v any, path ...string) any {
	t.Helper()
	for i, k := range path {
		switch c := v.(type) {
		case map[string]any:
			next, ok := c[k]
			if !ok {
				t.Fatalf("missing %s", strings.Join(path[:i+1], "/"))
			}
			v = next
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(c) {
				t.Fatalf("missing %s", strings.Join(path[:i+1], "/"))
			}
			v = c[n]
		default:
			t.Fatalf("%s is not a mapping or sequence", strings.Join(path[:i], "/"))
		}
	}
	return v
}

func atMap(t *testing.T, v any, path ...string) map[string]any {
	t.Helper()
	m, ok := at(t, v, path...).(map[string]any)
	if !ok {
		t.Fatalf("%s is not a mapping", strings.Join(path, "/"))
	}
	return m
}

func atString(t *testing.T, v any, path ...string) string {
	t.Helper()
	s, ok := at(t, v, path...).(string)
	if !ok {
		t.Fatalf("%s is not a string", strings.Join(path, "/"))
	}
	return s
}

func atNumber(t *testing.T, v any, path ...string) string {
	t.Helper()
	n, ok := at(t, v, path...).(json.Number)
	if !ok {
		t.Fatalf("%s is not a number", strings.Join(path, "/"))
	}
	return n.String()
}

// resolve follows a local "$ref" (as many as are chained).
func (s spec) resolve(t *testing.T, v any) any {
	t.Helper()
	for range 16 {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		r, err := s.lookup(ref)
		if err != nil {
			t.Fatal(err)
		}
		v = r
	}
	t.Fatalf("%s: $ref chain too long", s.name)
	return nil
}

func (s spec) lookup(ref string) (any, error) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("%s: $ref %q is not local", s.name, ref)
	}
	var v any = s.root
	for _, k := range strings.Split(path, "/") {
		k = strings.NewReplacer("~1", "/", "~0", "~").Replace(k)
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: $ref %q does not resolve", s.name, ref)
		}
		if v, ok = m[k]; !ok {
			return nil, fmt.Errorf("%s: $ref %q does not resolve", s.name, ref)
		}
	}
	return v, nil
}

func (s spec) schema(t *testing.T, name string) map[string]any {
	t.Helper()
	return atMap(t, s.root, "components", "schemas", name)
}

// asJSON marshals a spec value as a JSON body (keys sorted).
func asJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeJSON decodes b keeping numbers exact, like the spec values.
func decodeJSON(t *testing.T, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func TestSpecsParseAndResolve(t *testing.T) {
	for _, tc := range []struct{ file, key, version string }{
		{"openapi.yaml", "openapi", "3.1."},
		{"asyncapi.yaml", "asyncapi", "3.0."},
	} {
		t.Run(tc.file, func(t *testing.T) {
			s := loadSpec(t, tc.file)
			if v, _ := s.root[tc.key].(string); !strings.HasPrefix(v, tc.version) {
				t.Fatalf("%s: %s %q, want %sx", tc.file, tc.key, v, tc.version)
			}
			var walk func(v any, where string)
			walk = func(v any, where string) {
				switch c := v.(type) {
				case map[string]any:
					if ref, ok := c["$ref"].(string); ok {
						if _, err := s.lookup(ref); err != nil {
							t.Errorf("at %s: %v", where, err)
						}
					}
					for _, k := range sortedKeys(c) {
						walk(c[k], where+"/"+k)
					}
				case []any:
					for i, e := range c {
						walk(e, where+"/"+strconv.Itoa(i))
					}
				}
			}
			walk(s.root, "#")
		})
	}
}

// TestSpecsShareTheRequestSchema: both specs describe the same request
// envelope; apart from descriptions, their schemas must be identical.
func TestSpecsShareTheRequestSchema(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	as := loadSpec(t, "asyncapi.yaml")
	for _, name := range []string{"Request", "Method", "MsgID"} {
		a, b := stripDocs(oa.schema(t, name)), stripDocs(as.schema(t, name))
		if !reflect.DeepEqual(a, b) {
			t.Errorf("schema %s differs:\n  openapi.yaml  %s\n  asyncapi.yaml %s", name, asJSON(t, a), asJSON(t, b))
		}
	}
}

func stripDocs(v any) any {
	switch c := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range c {
			if k != "description" && k != "title" && k != "examples" {
				out[k] = stripDocs(e)
			}
		}
		return out
	case []any:
		out := make([]any, len(c))
		for i, e := range c {
			out[i] = stripDocs(e)
		}
		return out
	}
	return v
}
