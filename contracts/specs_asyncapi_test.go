package contracts_test

import (
	"bytes"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"cafe/contracts"
)

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
		// A dead-lettered command's reason tells how to replay it: by its
		// command id, which devices see as the repeat key.
		if want := "cafe dead replay --id " + atString(t, as.root, "components", "parameters", "key", "examples", "0"); code == contracts.CodeDeadLettered &&
			!strings.Contains(atString(t, e, "data", "reason"), want) {
			t.Errorf("result %s: the reason does not say %q", name, want)
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
