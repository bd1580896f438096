package contracts_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"cafe/contracts"
)

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
