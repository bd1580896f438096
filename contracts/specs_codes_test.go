package contracts_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"testing"

	"cafe/contracts"
)

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
	"CodeDeadLettered":      contracts.CodeDeadLettered,
	"CodeUnauthorized":      contracts.CodeUnauthorized,
	"CodeForbidden":         contracts.CodeForbidden,
	"CodeTooLarge":          contracts.CodeTooLarge,
	"CodeRateLimited":       contracts.CodeRateLimited,
	"CodeUnavailable":       contracts.CodeUnavailable,
	"CodeUnknownDevice":     contracts.CodeUnknownDevice,
	"CodeNoRecord":          contracts.CodeNoRecord,
	"CodeDuplicateID":       contracts.CodeDuplicateID,
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
