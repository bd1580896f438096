package contracts_test

// These tests keep openapi.yaml and asyncapi.yaml honest: what they say
// about codes, limits, routes, topics and payloads is checked against the
// code that enforces it, and every example is run through that code. When a
// test here fails, either the code changed a public contract (update the
// spec, and tell the app and device authors) or the spec was wrong.
//
// The examples are also checked against the specs' own schemas by a small
// JSON Schema evaluator below. It knows only the keywords these specs use
// and fails on any other, so a constraint is never silently skipped.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.yaml.in/yaml/v3"

	"cafe/cashier"
	"cafe/contracts"
	"cafe/contracts/amqplink"
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

// ---------------------------------------------------------------------------
// Error codes

// allCodes is every Code constant in errors.go, listed by hand. The scan in
// TestErrorCodesAreAllListed makes sure nobody adds a code without adding it
// here, and the tests below make sure every code listed here is documented.
var allCodes = map[string]contracts.Code{
	"CodeParseError":        contracts.CodeParseError,
	"CodeInvalidRequest":    contracts.CodeInvalidRequest,
	"CodeMethodNotFound":    contracts.CodeMethodNotFound,
	"CodeInvalidParams":     contracts.CodeInvalidParams,
	"CodeInternal":          contracts.CodeInternal,
	"CodeDeviceOffline":     contracts.CodeDeviceOffline,
	"CodeDeviceTimeout":     contracts.CodeDeviceTimeout,
	"CodeExpired":           contracts.CodeExpired,
	"CodeDeviceUnreachable": contracts.CodeDeviceUnreachable,
	"CodeBadDeviceReply":    contracts.CodeBadDeviceReply,
	"CodeUnauthorized":      contracts.CodeUnauthorized,
	"CodeForbidden":         contracts.CodeForbidden,
	"CodeTooLarge":          contracts.CodeTooLarge,
	"CodeRateLimited":       contracts.CodeRateLimited,
	"CodeUnavailable":       contracts.CodeUnavailable,
}

// scanCodes reads errors.go and returns every constant of type Code with
// its value, as written in the source.
func scanCodes(t *testing.T) map[string]int {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, sp := range gd.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					t.Fatalf("errors.go: Code constant %s has no explicit value", name.Name)
				}
				n, ok := intLiteral(vs.Values[i])
				if !ok {
					t.Fatalf("errors.go: Code constant %s is not an integer literal", name.Name)
				}
				found[name.Name] = n
			}
		}
	}
	return found
}

func intLiteral(e ast.Expr) (int, bool) {
	sign := 1
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.SUB {
		sign, e = -1, u.X
	}
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.INT {
		return 0, false
	}
	n, err := strconv.Atoi(lit.Value)
	return sign * n, err == nil
}

func TestErrorCodesAreAllListed(t *testing.T) {
	scanned := scanCodes(t)
	for name, v := range scanned {
		c, ok := allCodes[name]
		switch {
		case !ok:
			t.Errorf("errors.go defines %s = %d, which specs_test.go does not list: add it to allCodes and document it in openapi.yaml (ErrorCode) and, if it reaches apps in results, in asyncapi.yaml (PipelineErrorCode)", name, v)
		case int(c) != v:
			t.Errorf("%s: source says %d, compiled value %d", name, v, c)
		}
		if v <= -32000 && v >= -32099 || v >= -32768 && v <= -32600 {
			continue
		}
		t.Errorf("%s = %d is neither a standard JSON-RPC code nor in the pipeline's range -32000..-32099", name, v)
	}
	for name := range allCodes {
		if _, ok := scanned[name]; !ok {
			t.Errorf("allCodes lists %s, which errors.go no longer defines", name)
		}
	}
	if len(scanned) == 0 {
		t.Fatal("found no Code constants in errors.go; the scan is broken")
	}
}

// documentedCodes reads a oneOf of {const, title} entries.
func documentedCodes(t *testing.T, schema map[string]any) map[contracts.Code]string {
	t.Helper()
	got := map[contracts.Code]string{}
	entries, _ := schema["oneOf"].([]any)
	for i, e := range entries {
		n, _ := at(t, e, "const").(json.Number)
		c, err := strconv.Atoi(n.String())
		if err != nil {
			t.Fatalf("oneOf/%d: const %q is not an integer", i, n)
		}
		if _, dup := got[contracts.Code(c)]; dup {
			t.Errorf("code %d documented twice", c)
		}
		got[contracts.Code(c)] = atString(t, e, "title")
		if d, _ := at(t, e, "description").(string); d == "" {
			t.Errorf("code %d has no description", c)
		}
	}
	return got
}

func TestErrorCodesDocumentedInOpenAPI(t *testing.T) {
	doc := documentedCodes(t, loadSpec(t, "openapi.yaml").schema(t, "ErrorCode"))
	for _, name := range sortedKeys(allCodes) {
		c := allCodes[name]
		title, ok := doc[c]
		switch {
		case !ok:
			t.Errorf("%s (%d) is not documented in openapi.yaml components/schemas/ErrorCode", name, c)
		case title != c.Message():
			t.Errorf("%s (%d): openapi.yaml says %q, Code.Message() says %q", name, c, title, c.Message())
		}
		if c.Message() == "error "+strconv.Itoa(int(c)) {
			t.Errorf("%s (%d) has no message of its own in Code.Message()", name, c)
		}
	}
	defined := map[contracts.Code]bool{}
	for _, c := range allCodes {
		defined[c] = true
	}
	for c := range doc {
		if !defined[c] {
			t.Errorf("openapi.yaml documents code %d, which errors.go does not define", c)
		}
	}
}

// resultCodes are the codes the pipeline delivers in results: those with an
// outcome of their own.
func resultCodes() map[contracts.Code]bool {
	out := map[contracts.Code]bool{}
	for _, c := range allCodes {
		if contracts.OutcomeOf(c) != contracts.OutcomeReply {
			out[c] = true
		}
	}
	return out
}

func TestErrorCodesDocumentedInAsyncAPI(t *testing.T) {
	doc := documentedCodes(t, loadSpec(t, "asyncapi.yaml").schema(t, "PipelineErrorCode"))
	want := resultCodes()
	if len(want) == 0 {
		t.Fatal("no code has an outcome of its own; OutcomeOf changed?")
	}
	for c := range want {
		title, ok := doc[c]
		switch {
		case !ok:
			t.Errorf("result code %d (%s) is not documented in asyncapi.yaml PipelineErrorCode", c, c.Message())
		case title != c.Message():
			t.Errorf("code %d: asyncapi.yaml says %q, Code.Message() says %q", c, title, c.Message())
		}
	}
	for c := range doc {
		if !want[c] {
			t.Errorf("asyncapi.yaml documents %d as a result code, but OutcomeOf(%d) is %q", c, c, contracts.OutcomeOf(c))
		}
	}
}

// ---------------------------------------------------------------------------
// Limits and identifiers

func TestSpecLimitsMatchContracts(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	as := loadSpec(t, "asyncapi.yaml")
	nines := strings.Repeat("9", contracts.MaxNumberIDDigits)
	eq := func(what, got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("%s: spec says %s, code says %s", what, got, want)
		}
	}
	itoa := strconv.Itoa

	eq("openapi Batch minItems", atNumber(t, oa.schema(t, "Batch"), "minItems"), "1")
	eq("openapi Batch maxItems", atNumber(t, oa.schema(t, "Batch"), "maxItems"), itoa(contracts.DefaultMaxBatch))
	eq("cashier default MaxBatch", itoa(cashier.Defaults().MaxBatch), itoa(contracts.DefaultMaxBatch))
	for _, s := range []spec{oa, as} {
		eq(s.name+" Method minLength", atNumber(t, s.schema(t, "Method"), "minLength"), "1")
		eq(s.name+" Method maxLength", atNumber(t, s.schema(t, "Method"), "maxLength"), itoa(contracts.MaxMethodLen))
		eq(s.name+" Method reserved prefix", atString(t, s.schema(t, "Method"), "not", "pattern"), `^rpc\.`)
		num := atMap(t, s.schema(t, "MsgID"), "oneOf", "0")
		str := atMap(t, s.schema(t, "MsgID"), "oneOf", "1")
		eq(s.name+" MsgID integer type", atString(t, num, "type"), "integer")
		eq(s.name+" MsgID integer maximum", atNumber(t, num, "maximum"), nines)
		eq(s.name+" MsgID integer minimum", atNumber(t, num, "minimum"), "-"+nines)
		eq(s.name+" MsgID string maxLength", atNumber(t, str, "maxLength"), itoa(contracts.MaxStringIDLen))
		eq(s.name+" MsgID string pattern", atString(t, str, "pattern"), "^[A-Za-z0-9._:-]{1,"+itoa(contracts.MaxStringIDLen)+"}$")
	}
	eq("DeviceID maxLength", atNumber(t, oa.schema(t, "DeviceID"), "maxLength"), itoa(contracts.MaxDeviceIDLen))
	eq("DeviceID pattern", atString(t, oa.schema(t, "DeviceID"), "pattern"), "^[A-Za-z0-9._:-]{1,"+itoa(contracts.MaxDeviceIDLen)+"}$")
	eq("ClientID maxLength", atNumber(t, oa.schema(t, "ClientID"), "maxLength"), itoa(contracts.MaxClientIDLen))
	eq("ClientID pattern", atString(t, oa.schema(t, "ClientID"), "pattern"), "^[A-Za-z0-9._:-]{1,"+itoa(contracts.MaxClientIDLen)+"}$")

	op := atMap(t, oa.root, "paths", "/v1/devices/{deviceID}/commands", "post")
	def := cashier.Defaults()
	eq("x-max-body-bytes", atNumber(t, op, "requestBody", "x-max-body-bytes"), strconv.FormatInt(def.MaxBodyBytes, 10))
	eq("cashier body limit", strconv.FormatInt(def.MaxBodyBytes, 10), strconv.Itoa(cashier.MaxBodyLimit))
	timeout := atMap(t, oa.root, "components", "parameters", "CafeTimeout")
	eq("Cafe-Timeout name", atString(t, timeout, "name"), cashier.HeaderTimeout)
	eq("Cafe-Timeout x-default", mustDuration(t, atString(t, timeout, "x-default")).String(), def.DefaultTimeout.String())
	eq("Cafe-Timeout x-maximum", mustDuration(t, atString(t, timeout, "x-maximum")).String(), def.MaxTimeout.String())
	eq("Retry-After example", atNumber(t, oa.root, "components", "headers", "Retry-After", "example"), itoa(int(def.RetryAfter.Seconds())))
	eq("413 example size", atNumber(t, op, "responses", "413", "content", "application/json", "examples", "too-large", "x-request", "size"), itoa(cashier.MaxBodyLimit+1))

	// The limits hold at the edges, in ParseBody and in the schema alike.
	body := oa.schema(t, "Body")
	batch := func(n int) []byte {
		reqs := make([]string, n)
		for i := range reqs {
			reqs[i] = `{"jsonrpc":"2.0","method":"m","id":` + itoa(i) + `}`
		}
		return []byte("[" + strings.Join(reqs, ",") + "]")
	}
	for _, tc := range []struct {
		name  string
		body  []byte
		valid bool
	}{
		{"largest batch", batch(contracts.DefaultMaxBatch), true},
		{"batch over the limit", batch(contracts.DefaultMaxBatch + 1), false},
		{"longest method", []byte(`{"jsonrpc":"2.0","method":"` + strings.Repeat("m", contracts.MaxMethodLen) + `"}`), true},
		{"method too long", []byte(`{"jsonrpc":"2.0","method":"` + strings.Repeat("m", contracts.MaxMethodLen+1) + `"}`), false},
		{"longest numeric id", []byte(`{"jsonrpc":"2.0","method":"m","id":-` + nines + `}`), true},
		{"numeric id too long", []byte(`{"jsonrpc":"2.0","method":"m","id":1` + nines + `}`), false},
		{"longest string id", []byte(`{"jsonrpc":"2.0","method":"m","id":"` + strings.Repeat("a", contracts.MaxStringIDLen) + `"}`), true},
		{"string id too long", []byte(`{"jsonrpc":"2.0","method":"m","id":"` + strings.Repeat("a", contracts.MaxStringIDLen+1) + `"}`), false},
	} {
		_, _, err := contracts.ParseBody(tc.body, contracts.DefaultMaxBatch, nil)
		if (err == nil) != tc.valid {
			t.Errorf("%s: ParseBody err = %v, want valid %v", tc.name, err, tc.valid)
		}
		if errs := oa.validate(t, body, decodeJSON(t, tc.body)); (len(errs) == 0) != tc.valid {
			t.Errorf("%s: openapi.yaml Body schema says %v, want valid %v", tc.name, errs, tc.valid)
		}
	}
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIDPatternsMatchCharset checks that the documented patterns accept
// exactly what the Valid functions and ParseBody accept, character by
// character and at the length limits.
func TestIDPatternsMatchCharset(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	as := loadSpec(t, "asyncapi.yaml")
	var samples []string
	for c := range 128 {
		samples = append(samples, "a"+string(rune(c))+"b")
	}
	samples = append(samples, "", "é", "ü-1", "lamp-1")
	for _, n := range []int{1, 63, 64, 65, 127, 128, 129} {
		samples = append(samples, strings.Repeat("x", n))
	}
	check := func(what, pattern string, valid func(string) bool) {
		t.Helper()
		re := regexp.MustCompile(pattern)
		for _, s := range samples {
			if got, want := re.MatchString(s), valid(s); got != want {
				t.Errorf("%s: pattern %s matches %q: %v; code says valid: %v", what, pattern, s, got, want)
			}
		}
	}
	check("DeviceID", atString(t, oa.schema(t, "DeviceID"), "pattern"), contracts.ValidDeviceID)
	check("ClientID", atString(t, oa.schema(t, "ClientID"), "pattern"), contracts.ValidClientID)
	stringID := func(s string) bool {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": "m", "id": s})
		_, _, err := contracts.ParseBody(b, 1, nil)
		return err == nil
	}
	for _, s := range []spec{oa, as} {
		check(s.name+" MsgID string", atString(t, s.schema(t, "MsgID"), "oneOf", "1", "pattern"), stringID)
	}
	// The AsyncAPI parameters have no schema (AsyncAPI 3.0 parameters are
	// plain strings); their examples must be valid in the code.
	for name, valid := range map[string]func(string) bool{
		"deviceID": contracts.ValidDeviceID, "route": contracts.ValidRoute,
		"key": contracts.ValidKey, "clientID": contracts.ValidClientID,
	} {
		for _, ex := range at(t, as.root, "components", "parameters", name, "examples").([]any) {
			if s, _ := ex.(string); !valid(s) {
				t.Errorf("asyncapi.yaml parameter %s: example %q is not valid", name, ex)
			}
		}
	}
	if !contracts.ValidKey(contracts.NewCommandID()) {
		t.Error("a command id is not a valid repeat key")
	}
}

// TestCafeTimeoutPattern checks the header's pattern against Go's duration
// syntax: whatever it matches parses, and every positive duration matches.
func TestCafeTimeoutPattern(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	p := atMap(t, oa.root, "components", "parameters", "CafeTimeout")
	re := regexp.MustCompile(atString(t, p, "schema", "pattern"))
	for _, s := range []string{
		"5s", "1500ms", "1m30s", "1.5h", ".5s", "5.s", "+5s", "1h2m3s4ms5us6ns", "3µs", "3μs", " 5s ",
		"0s", "-5s", "5", "5 seconds", "s", "", "1d", "1.2.3s", "5S", "--5s", "5s5", "1e3s",
	} {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if re.MatchString(s) && err != nil {
			t.Errorf("pattern matches %q, which time.ParseDuration refuses: %v", s, err)
		}
		if err == nil && d > 0 && !re.MatchString(s) {
			t.Errorf("pattern refuses %q, which the cashier accepts (%v)", s, d)
		}
	}
	for name, ex := range atMap(t, p, "examples") {
		v := atString(t, ex, "value")
		if d, err := time.ParseDuration(v); err != nil || d <= 0 || d > cashier.Defaults().MaxTimeout {
			t.Errorf("Cafe-Timeout example %s: %q is not accepted by default", name, v)
		}
	}
}

// ---------------------------------------------------------------------------
// OpenAPI: the route and the examples, against ParseBody and the cashier

const (
	commandsPath  = "/v1/devices/{deviceID}/commands"
	exampleClient = "app-1"
	exampleToken  = "app-1-token"
	exampleDevice = "lamp-1"
)

func TestOpenAPIRoutesMatchCashier(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	s := newCashier(t, &fakeQueue{ready: true}, false)
	e, ok := s.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("the cashier's handler is a %T, no longer an *echo.Echo; adapt this test", s.Handler())
	}
	served := map[string]bool{}
	for _, r := range e.Routes() {
		if strings.HasPrefix(r.Path, "/debug/") {
			continue // pprof, only when enabled, not part of the contract
		}
		segs := strings.Split(r.Path, "/")
		for i, seg := range segs {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				segs[i] = "{" + name + "}"
			}
		}
		served[r.Method+" "+strings.Join(segs, "/")] = true
	}
	documented := map[string]bool{}
	for _, path := range sortedKeys(atMap(t, oa.root, "paths")) {
		item := atMap(t, oa.root, "paths", path)
		for _, method := range sortedKeys(item) {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	if !reflect.DeepEqual(served, documented) {
		t.Errorf("routes differ:\n  served by the cashier: %v\n  documented: %v", sortedKeys(served), sortedKeys(documented))
	}

	// The path's template parameters are exactly the declared path parameters.
	var declared []string
	for _, p := range at(t, oa.root, "paths", commandsPath, "parameters").([]any) {
		p = oa.resolve(t, p)
		if atString(t, p, "in") == "path" {
			declared = append(declared, atString(t, p, "name"))
			if at(t, p, "required") != true {
				t.Error("a path parameter must be required")
			}
		}
	}
	var inPath []string
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(commandsPath, -1) {
		inPath = append(inPath, m[1])
	}
	if !slices.Equal(declared, inPath) || !slices.Equal(inPath, []string{"deviceID"}) {
		t.Errorf("path parameters: template %v, declared %v; the cashier reads c.Param(\"deviceID\")", inPath, declared)
	}
}

// fakeQueue stands in for RabbitMQ: it confirms everything except the
// requests whose raw id token is in refuse ("" for a one-way command).
type fakeQueue struct {
	ready  bool
	refuse []string
}

func (q *fakeQueue) Publish(_ context.Context, _, _ string, m amqp.Publishing) error {
	id, _ := m.Headers[contracts.HeaderMsgID].(string)
	if slices.Contains(q.refuse, id) {
		return amqplink.ErrNacked
	}
	return nil
}

func (q *fakeQueue) Ready() bool { return q.ready }

// newCashier runs a cashier with the defaults and one client, app-1, that
// may command lamp-* and door-7; slow gives it a rate of one command with
// no refill worth speaking of.
func newCashier(t *testing.T, q cashier.Queue, slow bool) *cashier.Server {
	t.Helper()
	sum := sha256.Sum256([]byte(exampleToken))
	reg := fmt.Sprintf("clients:\n  - id: %s\n    token_sha256: %s\n    devices: [\"lamp-*\", \"door-7\"]\n", exampleClient, hex.EncodeToString(sum[:]))
	if slow {
		reg += "    rate: 0.001\n    burst: 1\n"
	}
	r, err := cashier.ParseRegistry([]byte(reg))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cashier.Defaults()
	cfg.Addr = "127.0.0.1:0"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := cashier.New(cfg, r, q, contracts.DefaultTopology(), prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cashier: %v", err)
		}
	})
	return s
}

// exampleCall is an example's x-request and x-cashier: how to provoke it.
type exampleCall struct {
	method, path string
	deviceID     string
	auth         string // "" (the example token), "none" or "unknown"
	headers      map[string]string
	body         []byte
	bodyIsJSON   bool // body came from x-request.json or x-request.raw (not size)
	queueReady   bool
	refuse       []string
	rateSpent    bool
}

func newExampleCall(t *testing.T, method, path string, ex map[string]any) exampleCall {
	t.Helper()
	c := exampleCall{method: method, path: path, deviceID: exampleDevice, queueReady: true}
	if req, ok := ex["x-request"].(map[string]any); ok {
		for _, k := range sortedKeys(req) {
			switch v := req[k]; k {
			case "deviceID":
				c.deviceID = v.(string)
			case "auth":
				c.auth = v.(string)
			case "headers":
				c.headers = map[string]string{}
				for h, hv := range v.(map[string]any) {
					c.headers[h] = hv.(string)
				}
			case "json":
				c.body, c.bodyIsJSON = asJSON(t, v), true
			case "raw":
				c.body, c.bodyIsJSON = []byte(v.(string)), true
			case "size":
				n, err := strconv.Atoi(v.(json.Number).String())
				if err != nil {
					t.Fatal(err)
				}
				pad := n - len(`{"jsonrpc":"2.0","method":"m","id":1,"pad":""}`)
				c.body = []byte(`{"jsonrpc":"2.0","method":"m","id":1,"pad":"` + strings.Repeat("x", pad) + `"}`)
			default:
				t.Fatalf("x-request: unknown member %q", k)
			}
		}
	}
	if st, ok := ex["x-cashier"].(map[string]any); ok {
		for _, k := range sortedKeys(st) {
			switch v := st[k]; k {
			case "queue-ready":
				c.queueReady = v.(bool)
			case "rate-spent":
				c.rateSpent = v.(bool)
			case "refuse":
				for _, id := range v.([]any) {
					tok := ""
					if id != nil {
						tok = string(asJSON(t, id))
					}
					c.refuse = append(c.refuse, tok)
				}
			default:
				t.Fatalf("x-cashier: unknown member %q", k)
			}
		}
	}
	return c
}

// do sends the call to a fresh cashier set up as the call says.
func (c exampleCall) do(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	s := newCashier(t, &fakeQueue{ready: c.queueReady, refuse: c.refuse}, c.rateSpent)
	send := func() (*http.Response, []byte) {
		path := strings.ReplaceAll(c.path, "{deviceID}", c.deviceID)
		r := httptest.NewRequest(c.method, path, bytes.NewReader(c.body))
		switch c.auth {
		case "":
			r.Header.Set("Authorization", "Bearer "+exampleToken)
		case "unknown":
			r.Header.Set("Authorization", "Bearer not-a-known-token")
		case "none":
		default:
			t.Fatalf("x-request.auth %q: want none or unknown", c.auth)
		}
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		res := w.Result()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}
	if c.rateSpent {
		if res, b := send(); res.StatusCode != http.StatusAccepted {
			t.Fatalf("spending the rate: got %d %s, want 202", res.StatusCode, b)
		}
	}
	return send()
}

// notProvoked are response examples that a unit test cannot bring about.
var notProvoked = map[string]string{
	"POST " + commandsPath + " 500 internal": "needs a bug in the cashier",
	"GET /readyz 503 shutting-down":          "needs a cashier in the middle of its shutdown",
	"GET /metrics 200 sample":                "checked after a command by TestOpenAPIMetricsAfterACommand",
}

// withoutReason drops error.data.reason (prose for people, not contract)
// after checking that it is there.
func withoutReason(t *testing.T, what string, v any) any {
	t.Helper()
	m, _ := v.(map[string]any)
	e, _ := m["error"].(map[string]any)
	d, _ := e["data"].(map[string]any)
	if d == nil {
		return v
	}
	if r, _ := d["reason"].(string); r == "" {
		t.Errorf("%s: error.data.reason is missing or empty", what)
	}
	delete(d, "reason")
	return v
}

func TestOpenAPIRequestExamples(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	op := atMap(t, oa.root, "paths", commandsPath, "post")
	media := atMap(t, op, "requestBody", "content", "application/json")
	schema := atMap(t, media, "schema")
	accepted := atMap(t, op, "responses", "202", "content", "application/json", "examples")
	examples := atMap(t, media, "examples")
	if len(examples) == 0 {
		t.Fatal("no request examples")
	}
	for _, name := range sortedKeys(examples) {
		t.Run(name, func(t *testing.T) {
			body := asJSON(t, at(t, examples[name], "value"))
			if errs := oa.validate(t, schema, decodeJSON(t, body)); len(errs) > 0 {
				t.Errorf("example does not match the Body schema: %v", errs)
			}
			reqs, batch, err := contracts.ParseBody(body, contracts.DefaultMaxBatch, nil)
			if err != nil {
				t.Fatalf("ParseBody refuses the example %s: %v", body, err)
			}
			// The 202 example of the same name names exactly these ids.
			want, ok := accepted[name]
			if !ok {
				t.Fatalf("no 202 example named %q", name)
			}
			ids, notifications := []any{}, 0
			for _, r := range reqs {
				if r.Notification() {
					notifications++
					continue
				}
				ids = append(ids, decodeJSON(t, r.ID))
			}
			wantBody := at(t, want, "value")
			if got := map[string]any{"client_id": exampleClient, "accepted": ids, "notifications": json.Number(strconv.Itoa(notifications))}; !jsonEqual(got, wantBody) {
				t.Errorf("202 example %s does not list what ParseBody found: %s (batch %v)", asJSON(t, wantBody), asJSON(t, got), batch)
			}
			// And the cashier answers it with exactly that.
			res, out := newExampleCall(t, http.MethodPost, commandsPath, map[string]any{"x-request": map[string]any{"raw": string(body)}}).do(t)
			if res.StatusCode != http.StatusAccepted || !jsonEqual(decodeJSON(t, out), wantBody) {
				t.Errorf("the cashier answers %d %s, the spec says 202 %s", res.StatusCode, out, asJSON(t, wantBody))
			}
		})
	}
}

// TestOpenAPIResponseExamples provokes every response example from the
// cashier and compares what it answers; examples about the body must also
// fail contracts.ParseBody with the documented code, field and index.
func TestOpenAPIResponseExamples(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	n := 0
	for _, path := range sortedKeys(atMap(t, oa.root, "paths")) {
		for _, method := range sortedKeys(atMap(t, oa.root, "paths", path)) {
			if method == "parameters" {
				continue
			}
			op := atMap(t, oa.root, "paths", path, method)
			for _, status := range sortedKeys(atMap(t, op, "responses")) {
				resp := atMap(t, op, "responses", status)
				for _, ctype := range sortedKeys(atMap(t, resp, "content")) {
					media := atMap(t, resp, "content", ctype)
					examples, _ := media["examples"].(map[string]any)
					for _, name := range sortedKeys(examples) {
						id := strings.ToUpper(method) + " " + path + " " + status + " " + name
						if status == "202" {
							continue // TestOpenAPIRequestExamples
						}
						ex := atMap(t, examples, name)
						n++
						t.Run(strings.ReplaceAll(id, "/", "_"), func(t *testing.T) {
							checkResponseExample(t, oa, strings.ToUpper(method), path, status, ctype, media, resp, name, ex, id)
						})
					}
				}
			}
		}
	}
	if n < 20 {
		t.Fatalf("found only %d response examples; the walk is broken", n)
	}
}

func checkResponseExample(t *testing.T, oa spec, method, path, status, ctype string, media, resp map[string]any, name string, ex map[string]any, id string) {
	value := at(t, ex, "value")
	if ctype == "application/json" {
		if errs := oa.validate(t, atMap(t, media, "schema"), value); len(errs) > 0 {
			t.Errorf("example does not match its schema: %v", errs)
		}
	}
	call := newExampleCall(t, method, path, ex)

	// An example about the body fails ParseBody as documented.
	if status == "400" && call.bodyIsJSON {
		code := atNumber(t, value, "error", "code")
		field, _ := at(t, value, "error", "data").(map[string]any)["field"].(string)
		_, _, err := contracts.ParseBody(call.body, contracts.DefaultMaxBatch, nil)
		switch {
		case field == "deviceID" || field == cashier.HeaderTimeout:
			if err != nil {
				t.Errorf("the example's body should be valid (the error is about %s), ParseBody says %v", field, err)
			}
		case err == nil:
			t.Errorf("ParseBody accepts %s, documented as %s", call.body, code)
		default:
			var e *contracts.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseBody error %v is not a *contracts.Error", err)
			}
			got := withoutReason(t, id, decodeJSON(t, contracts.ErrorResponse(nil, e)))
			if want := withoutReason(t, id, decodeJSON(t, asJSON(t, value))); !jsonEqual(got, want) {
				t.Errorf("ParseBody(%s):\n  got  %s\n  spec %s", call.body, asJSON(t, got), asJSON(t, want))
			}
		}
	}

	if why, skip := notProvoked[id]; skip {
		t.Skipf("not provoked here: %s", why)
	}
	if method == http.MethodPost && call.body == nil {
		t.Fatalf("example has no x-request body; add one, or list it in notProvoked")
	}
	res, out := call.do(t)
	if strconv.Itoa(res.StatusCode) != status {
		t.Fatalf("the cashier answers %d %s, the spec says %s", res.StatusCode, out, status)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), ctype) {
		t.Errorf("Content-Type %q, the spec says %s", res.Header.Get("Content-Type"), ctype)
	}
	switch ctype {
	case "application/json":
		got := withoutReason(t, id+" (cashier)", decodeJSON(t, out))
		if want := withoutReason(t, id, decodeJSON(t, asJSON(t, value))); !jsonEqual(got, want) {
			t.Errorf("the cashier answers\n  %s\nthe spec says\n  %s", out, asJSON(t, value))
		}
	default: // text: every line of the example is in the answer
		for line := range strings.Lines(value.(string)) {
			if !strings.Contains(string(out), line) {
				t.Errorf("the answer has no line %q", strings.TrimSpace(line))
			}
		}
	}
	headers, _ := resp["headers"].(map[string]any)
	for _, h := range sortedKeys(headers) {
		def := oa.resolve(t, headers[h])
		got := res.Header.Get(h)
		if got == "" {
			if at(t, def, "required") == true {
				t.Errorf("header %s is missing", h)
			}
			continue
		}
		var v any = got
		if ty, _ := atMap(t, def, "schema")["type"].(string); ty == "integer" {
			v = json.Number(got)
		}
		if errs := oa.validate(t, atMap(t, def, "schema"), v); len(errs) > 0 {
			t.Errorf("header %s: %q does not match its schema: %v", h, got, errs)
		}
	}
}

func TestOpenAPIMetricsAfterACommand(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	want := atString(t, oa.root, "paths", "/metrics", "get", "responses", "200", "content", "text/plain", "examples", "sample", "value")
	s := newCashier(t, &fakeQueue{ready: true}, false)
	r := httptest.NewRequest(http.MethodPost, "/v1/devices/lamp-1/commands", strings.NewReader(`{"jsonrpc":"2.0","method":"m","id":1}`))
	r.Header.Set("Authorization", "Bearer "+exampleToken)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	s.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.Lines(want) {
		if !strings.Contains(w.Body.String(), line) {
			t.Errorf("/metrics after one accepted command has no line %q", strings.TrimSpace(line))
		}
	}
}

// ---------------------------------------------------------------------------
// AsyncAPI: topics and payloads, against the contracts package

func TestAsyncAPITopicsMatchContracts(t *testing.T) {
	as := loadSpec(t, "asyncapi.yaml")
	sample := map[string]string{}
	for _, name := range sortedKeys(atMap(t, as.root, "components", "parameters")) {
		sample[name] = atString(t, as.root, "components", "parameters", name, "examples", "0")
	}
	address := func(channel string) string {
		t.Helper()
		ch := atMap(t, as.root, "channels", channel)
		addr := atString(t, ch, "address")
		params, _ := ch["parameters"].(map[string]any)
		var inAddr []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(addr, -1) {
			inAddr = append(inAddr, m[1])
			p := atMap(t, as.resolve(t, params[m[1]]))
			ex := atString(t, p, "examples", "0")
			addr = strings.Replace(addr, m[0], ex, 1)
		}
		sort.Strings(inAddr)
		if !slices.Equal(inAddr, sortedKeys(params)) {
			t.Errorf("channel %s: address parameters %v, declared %v", channel, inAddr, sortedKeys(params))
		}
		return addr
	}
	d, r, k, c := sample["deviceID"], sample["route"], sample["key"], sample["clientID"]
	cmd := address("deviceCommands")
	for _, tc := range []struct{ channel, got, want string }{
		{"deviceCommands", cmd, contracts.CommandTopic(d, r, k)},
		{"deviceReplies", address("deviceReplies"), contracts.ReplyTopic(d, r, k)},
		{"devicePresence", address("devicePresence"), contracts.PresenceTopic(d)},
		{"clientResults", address("clientResults"), contracts.ResultsTopic(c)},
	} {
		if tc.got != tc.want {
			t.Errorf("channel %s: spec gives %q, contracts builds %q", tc.channel, tc.got, tc.want)
		}
	}
	if got, ok := contracts.ReplyTopicFor(cmd); !ok || got != address("deviceReplies") {
		t.Errorf("ReplyTopicFor(%q) = %q, %v; the spec's reply topic is %q", cmd, got, ok, address("deviceReplies"))
	}
	if gd, gr, gk, ok := contracts.ParseCommandTopic(cmd); !ok || gd != d || gr != r || gk != k {
		t.Errorf("ParseCommandTopic(%q) = %q %q %q %v", cmd, gd, gr, gk, ok)
	}
	if gd, gr, gk, ok := contracts.ParseReplyTopic(address("deviceReplies")); !ok || gd != d || gr != r || gk != k {
		t.Errorf("ParseReplyTopic = %q %q %q %v", gd, gr, gk, ok)
	}
	if gd, ok := contracts.ParsePresenceTopic(address("devicePresence")); !ok || gd != d {
		t.Errorf("ParsePresenceTopic = %q %v", gd, ok)
	}
	if gc, ok := contracts.ParseResultsTopic(address("clientResults")); !ok || gc != c {
		t.Errorf("ParseResultsTopic = %q %v", gc, ok)
	}

	// The subscriptions the prose tells devices and baristas to make.
	for _, tc := range []struct{ where, text, want string }{
		{"receiveCommand summary", atString(t, as.root, "operations", "receiveCommand", "summary"), contracts.CommandsFilter("{deviceID}")},
		{"deviceReplies description", atString(t, as.root, "channels", "deviceReplies", "description"), contracts.RepliesFilter("{its route}")},
		{"devicePresence description", atString(t, as.root, "channels", "devicePresence", "description"), contracts.PresenceFilter},
	} {
		if !strings.Contains(tc.text, tc.want) {
			t.Errorf("%s does not mention %q", tc.where, tc.want)
		}
	}
}

func TestAsyncAPIOperationsAreQoS1(t *testing.T) {
	as := loadSpec(t, "asyncapi.yaml")
	ops := atMap(t, as.root, "operations")
	want := map[string]struct {
		action, channel string
		retain          bool
	}{
		"receiveCommand": {"receive", "deviceCommands", false},
		"sendReply":      {"send", "deviceReplies", false},
		"sendPresence":   {"send", "devicePresence", true},
		"receiveResult":  {"receive", "clientResults", false},
	}
	if !slices.Equal(sortedKeys(ops), sortedKeys(want)) {
		t.Errorf("operations %v, want %v", sortedKeys(ops), sortedKeys(want))
	}
	for name, w := range want {
		op := atMap(t, ops, name)
		if got := atString(t, op, "action"); got != w.action {
			t.Errorf("%s: action %s, want %s", name, got, w.action)
		}
		if got := atString(t, op, "channel", "$ref"); got != "#/channels/"+w.channel {
			t.Errorf("%s: channel %s, want %s", name, got, w.channel)
		}
		if got := atNumber(t, op, "bindings", "mqtt", "qos"); got != "1" {
			t.Errorf("%s: qos %s, want 1", name, got)
		}
		if got := at(t, op, "bindings", "mqtt", "retain"); got != w.retain {
			t.Errorf("%s: retain %v, want %v", name, got, w.retain)
		}
	}
}

// messageExamples returns a message's examples by name.
func messageExamples(t *testing.T, as spec, message string) (schema map[string]any, examples map[string]any) {
	t.Helper()
	m := atMap(t, as.root, "components", "messages", message)
	examples = map[string]any{}
	for i, ex := range at(t, m, "examples").([]any) {
		name := atString(t, ex, "name")
		if _, dup := examples[name]; dup {
			t.Fatalf("%s: example %d: name %q twice", message, i, name)
		}
		examples[name] = at(t, ex, "payload")
	}
	return atMap(t, m, "payload"), examples
}

func TestAsyncAPIPayloadExamples(t *testing.T) {
	as := loadSpec(t, "asyncapi.yaml")

	// Commands are valid requests; their ids, as raw tokens, are what
	// replies and results are checked against.
	schema, commands := messageExamples(t, as, "Command")
	commandID := map[string][]byte{} // example name → raw id
	for _, name := range sortedKeys(commands) {
		body := asJSON(t, commands[name])
		if errs := as.validate(t, schema, commands[name]); len(errs) > 0 {
			t.Errorf("command %s does not match its schema: %v", name, errs)
		}
		req, err := contracts.ParseRequest(body)
		if err != nil {
			t.Errorf("command %s: ParseRequest refuses it: %v", name, err)
			continue
		}
		commandID[name] = req.ID
	}
	answering := func(what string, payload any) []byte {
		t.Helper()
		id := asJSON(t, at(t, payload, "id"))
		for _, name := range sortedKeys(commandID) {
			if bytes.Equal(commandID[name], id) {
				return commandID[name]
			}
		}
		t.Errorf("%s: id %s is not the id of any command example", what, id)
		return nil
	}

	schema, replies := messageExamples(t, as, "Reply")
	for _, name := range sortedKeys(replies) {
		if errs := as.validate(t, schema, replies[name]); len(errs) > 0 {
			t.Errorf("reply %s does not match its schema: %v", name, errs)
		}
		if err := contracts.CheckReply(asJSON(t, replies[name]), answering("reply "+name, replies[name])); err != nil {
			t.Errorf("reply %s: CheckReply refuses it: %v", name, err)
		}
	}
	for i, bad := range at(t, as.root, "components", "messages", "Reply", "x-invalid-examples").([]any) {
		name := atString(t, bad, "name")
		id, ok := commandID[atString(t, bad, "x-answers")]
		if !ok {
			t.Errorf("invalid reply %d (%s): x-answers names no command example", i, name)
			continue
		}
		err := contracts.CheckReply(asJSON(t, at(t, bad, "payload")), id)
		if !errors.Is(err, contracts.CodeBadDeviceReply) {
			t.Errorf("invalid reply %s: CheckReply says %v, want bad device reply", name, err)
		}
	}

	// Results: each is a response to one of the commands; the pipeline's
	// own errors carry a documented code, its message and the device id.
	schema, results := messageExamples(t, as, "Result")
	pipelineError := as.schema(t, "PipelineError")
	covered := map[contracts.Code]bool{}
	for _, name := range sortedKeys(results) {
		payload := results[name]
		if errs := as.validate(t, schema, payload); len(errs) > 0 {
			t.Errorf("result %s does not match its schema: %v", name, errs)
		}
		if err := contracts.CheckReply(asJSON(t, payload), answering("result "+name, payload)); err != nil {
			t.Errorf("result %s: not a valid response to its command: %v", name, err)
		}
		e, _ := payload.(map[string]any)["error"].(map[string]any)
		if e == nil {
			continue
		}
		c, _ := strconv.Atoi(atNumber(t, e, "code"))
		code := contracts.Code(c)
		if !resultCodes()[code] {
			continue // the device's own error
		}
		covered[code] = true
		if errs := as.validate(t, pipelineError, e); len(errs) > 0 {
			t.Errorf("result %s: error does not match PipelineError: %v", name, errs)
		}
		if got := atString(t, e, "message"); got != code.Message() {
			t.Errorf("result %s: message %q, Code.Message() is %q", name, got, code.Message())
		}
		if got, want := atString(t, e, "data", "device_id"), atString(t, as.root, "components", "parameters", "deviceID", "examples", "0"); got != want {
			t.Errorf("result %s: device_id %q, the example device is %q", name, got, want)
		}
	}
	for c := range resultCodes() {
		if !covered[c] {
			t.Errorf("no result example shows code %d (%s)", c, c.Message())
		}
	}

	schema, presence := messageExamples(t, as, "Presence")
	for _, name := range sortedKeys(presence) {
		if errs := as.validate(t, schema, presence[name]); len(errs) > 0 {
			t.Errorf("presence %s does not match its schema: %v", name, errs)
		}
		online, err := contracts.ParsePresence(asJSON(t, presence[name]))
		if err != nil {
			t.Errorf("presence %s: ParsePresence refuses it: %v", name, err)
		}
		if want := at(t, presence[name], "online"); online != want {
			t.Errorf("presence %s: ParsePresence reads online=%v, the payload says %v", name, online, want)
		}
	}
	for _, name := range []string{"online", "offline"} {
		if _, ok := presence[name]; !ok {
			t.Errorf("no presence example %q", name)
		}
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

// ---------------------------------------------------------------------------
// A small JSON Schema evaluator: the keywords these specs use, nothing more.

// annotations are keywords that do not constrain a value.
var annotations = map[string]bool{
	"title": true, "description": true, "examples": true, "example": true,
	"default": true, "format": true, "deprecated": true, "readOnly": true,
	"writeOnly": true, "$comment": true,
}

// validate returns what is wrong with v under schema (nil: nothing).
func (s spec) validate(t *testing.T, schema any, v any) []string {
	t.Helper()
	var errs []string
	s.check(t, schema, v, "$", &errs)
	return errs
}

func (s spec) check(t *testing.T, schema any, v any, where string, errs *[]string) {
	t.Helper()
	sc, ok := schema.(map[string]any)
	if !ok {
		if b, isBool := schema.(bool); isBool {
			if !b {
				*errs = append(*errs, where+": schema false")
			}
			return
		}
		t.Fatalf("schema at %s is a %T", where, schema)
	}
	fail := func(format string, a ...any) { *errs = append(*errs, where+": "+fmt.Sprintf(format, a...)) }
	sub := func(schema any, v any) []string {
		var e []string
		s.check(t, schema, v, where, &e)
		return e
	}
	for _, k := range sortedKeys(sc) {
		kw := sc[k]
		switch {
		case annotations[k], strings.HasPrefix(k, "x-"):
		case k == "$ref":
			r, err := s.lookup(kw.(string))
			if err != nil {
				t.Fatal(err)
			}
			s.check(t, r, v, where, errs)
		case k == "type":
			var types []any
			if l, isList := kw.([]any); isList {
				types = l
			} else {
				types = []any{kw}
			}
			if !slices.ContainsFunc(types, func(ty any) bool { return hasType(v, ty.(string)) }) {
				fail("%s is not of type %v", short(v), kw)
			}
		case k == "const":
			if !jsonEqual(v, kw) {
				fail("%s is not %s", short(v), short(kw))
			}
		case k == "enum":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return jsonEqual(v, e) }) {
				fail("%s is not one of %s", short(v), short(kw))
			}
		case k == "minimum" || k == "maximum":
			n, isNum := v.(json.Number)
			if !isNum {
				continue
			}
			cmp := rat(t, n).Cmp(rat(t, kw.(json.Number)))
			if k == "minimum" && cmp < 0 || k == "maximum" && cmp > 0 {
				fail("%s is out of %s %s", n, k, kw)
			}
		case k == "minLength" || k == "maxLength":
			str, isStr := v.(string)
			if !isStr {
				continue
			}
			lim, _ := strconv.Atoi(kw.(json.Number).String())
			if n := utf8.RuneCountInString(str); k == "minLength" && n < lim || k == "maxLength" && n > lim {
				fail("length %d is out of %s %d", n, k, lim)
			}
		case k == "pattern":
			if str, isStr := v.(string); isStr && !regexp.MustCompile(kw.(string)).MatchString(str) {
				fail("%q does not match %s", str, kw)
			}
		case k == "minItems" || k == "maxItems":
			arr, isArr := v.([]any)
			if !isArr {
				continue
			}
			lim, _ := strconv.Atoi(kw.(json.Number).String())
			if k == "minItems" && len(arr) < lim || k == "maxItems" && len(arr) > lim {
				fail("%d items is out of %s %d", len(arr), k, lim)
			}
		case k == "items":
			if arr, isArr := v.([]any); isArr {
				for i, e := range arr {
					s.check(t, kw, e, where+"["+strconv.Itoa(i)+"]", errs)
				}
			}
		case k == "required":
			if obj, isObj := v.(map[string]any); isObj {
				for _, r := range kw.([]any) {
					if _, ok := obj[r.(string)]; !ok {
						fail("required member %q is missing", r)
					}
				}
			}
		case k == "properties":
			if obj, isObj := v.(map[string]any); isObj {
				props := kw.(map[string]any)
				for _, p := range sortedKeys(props) {
					if e, ok := obj[p]; ok {
						s.check(t, props[p], e, where+"."+p, errs)
					}
				}
			}
		case k == "additionalProperties":
			if obj, isObj := v.(map[string]any); isObj {
				props, _ := sc["properties"].(map[string]any)
				for _, p := range sortedKeys(obj) {
					if _, declared := props[p]; !declared {
						s.check(t, kw, obj[p], where+"."+p, errs)
					}
				}
			}
		case k == "allOf":
			for _, e := range kw.([]any) {
				s.check(t, e, v, where, errs)
			}
		case k == "anyOf":
			if !slices.ContainsFunc(kw.([]any), func(e any) bool { return len(sub(e, v)) == 0 }) {
				fail("%s matches none of anyOf", short(v))
			}
		case k == "oneOf":
			var matched int
			var why []string
			for _, e := range kw.([]any) {
				if es := sub(e, v); len(es) == 0 {
					matched++
				} else {
					why = append(why, es...)
				}
			}
			if matched != 1 {
				fail("%s matches %d of oneOf, want 1 (%s)", short(v), matched, strings.Join(why, "; "))
			}
		case k == "not":
			if len(sub(kw, v)) == 0 {
				fail("%s matches the schema under not", short(v))
			}
		default:
			t.Fatalf("schema at %s uses %q, which this test's JSON Schema evaluator does not know; teach it, so the constraint is checked", where, k)
		}
	}
}

func hasType(v any, ty string) bool {
	switch ty {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		r, ok := new(big.Rat).SetString(n.String())
		return ok && r.IsInt()
	}
	return false
}

func rat(t *testing.T, n json.Number) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(n.String())
	if !ok {
		t.Fatalf("%q is not a number", n)
	}
	return r
}

// jsonEqual compares two decoded JSON values; numbers by value.
func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		ra, okA := new(big.Rat).SetString(x.String())
		rb, okB := new(big.Rat).SetString(y.String())
		return okA && okB && ra.Cmp(rb) == 0
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !jsonEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}

// TestSchemaEvaluator makes sure the evaluator above rejects what it must,
// so that a passing example check means something.
func TestSchemaEvaluator(t *testing.T) {
	oa := loadSpec(t, "openapi.yaml")
	body := oa.schema(t, "Body")
	for _, tc := range []struct {
		name string
		body string
	}{
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","method":"m"}`},
		{"no method", `{"jsonrpc":"2.0"}`},
		{"reserved method", `{"jsonrpc":"2.0","method":"rpc.x"}`},
		{"empty method", `{"jsonrpc":"2.0","method":""}`},
		{"null id", `{"jsonrpc":"2.0","method":"m","id":null}`},
		{"fraction id", `{"jsonrpc":"2.0","method":"m","id":1.5}`},
		{"id with slash", `{"jsonrpc":"2.0","method":"m","id":"a/b"}`},
		{"string params", `{"jsonrpc":"2.0","method":"m","params":"x"}`},
		{"empty batch", `[]`},
		{"batch of scalars", `[1]`},
		{"scalar", `7`},
	} {
		if errs := oa.validate(t, body, decodeJSON(t, []byte(tc.body))); len(errs) == 0 {
			t.Errorf("%s: the Body schema accepts %s", tc.name, tc.body)
		}
		if _, _, err := contracts.ParseBody([]byte(tc.body), contracts.DefaultMaxBatch, nil); err == nil {
			t.Errorf("%s: ParseBody accepts %s", tc.name, tc.body)
		}
	}
}
