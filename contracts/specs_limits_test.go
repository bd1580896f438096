package contracts_test

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafe/cashier"
	"cafe/contracts"
)

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
	eq("cashier body limit", strconv.FormatInt(def.MaxBodyBytes, 10), strconv.Itoa(contracts.MaxBodyBytes))
	timeout := atMap(t, oa.root, "components", "parameters", "CafeTimeout")
	eq("Cafe-Timeout name", atString(t, timeout, "name"), cashier.HeaderTimeout)
	eq("Cafe-Timeout x-default", mustDuration(t, atString(t, timeout, "x-default")).String(), def.DefaultTimeout.String())
	eq("Cafe-Timeout x-maximum", mustDuration(t, atString(t, timeout, "x-maximum")).String(), def.MaxTimeout.String())
	eq("Retry-After example", atNumber(t, oa.root, "components", "headers", "Retry-After", "example"), itoa(int(def.RetryAfter.Seconds())))
	eq("413 example size", atNumber(t, op, "responses", "413", "content", "application/json", "examples", "too-large", "x-request", "size"), itoa(contracts.MaxBodyBytes+1))

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
	stringToken := func(s string) bool { return contracts.ValidIDToken(`"` + s + `"`) }
	for _, s := range []spec{oa, as} {
		check(s.name+" MsgID string", atString(t, s.schema(t, "MsgID"), "oneOf", "1", "pattern"), stringID)
		check(s.name+" MsgID string token", atString(t, s.schema(t, "MsgID"), "oneOf", "1", "pattern"), stringToken)
	}

	// Numeric ids: the MsgID schemas, ParseBody and ValidIDToken (which
	// reads the cafe-msg-id header) agree on every token, except where only
	// the way a number is written differs: JSON Schema compares numbers by
	// value, so to it -0, 7.0 and 1e3 are integers. The code refuses those,
	// and the descriptions must say so.
	nines := strings.Repeat("9", contracts.MaxNumberIDDigits)
	writtenOnly := map[string]string{"-0": "`-0`", "7.0": "fraction", "1e3": "exponent"}
	for _, tok := range []string{
		"0", "-0", "7", "-7", "10", "-10", nines, "-" + nines, "1" + nines, "-1" + nines,
		"7.0", "7.5", "1e3", "-00", "01", "-", "+7", "0x1", "",
	} {
		_, _, err := contracts.ParseBody([]byte(`{"jsonrpc":"2.0","method":"m","id":`+tok+`}`), 1, nil)
		parsed := err == nil
		if token := contracts.ValidIDToken(tok); token != parsed {
			t.Errorf("numeric id %q: ValidIDToken says %v, ParseBody says valid %v", tok, token, parsed)
		}
		if !json.Valid([]byte(tok)) {
			if parsed {
				t.Errorf("numeric id %q is not JSON, and ParseBody accepts it", tok)
			}
			continue
		}
		for _, s := range []spec{oa, as} {
			inSchema := len(s.validate(t, s.schema(t, "MsgID"), decodeJSON(t, []byte(tok)))) == 0
			mention, only := writtenOnly[tok]
			switch {
			case only && parsed:
				t.Errorf("ParseBody accepts the numeric id %s, which the %s MsgID description refuses", tok, s.name)
			case only && !strings.Contains(atString(t, s.schema(t, "MsgID"), "description"), mention):
				t.Errorf("%s MsgID: the schema accepts %s, which the code refuses, and the description does not mention %s", s.name, tok, mention)
			case !only && inSchema != parsed:
				t.Errorf("%s MsgID: the schema says %s is valid: %v; ParseBody says %v", s.name, tok, inSchema, parsed)
			}
		}
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
