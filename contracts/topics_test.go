package contracts_test

import (
	"testing"

	"cafe/contracts"
)

func TestTopicBuilders(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"command", contracts.CommandTopic("lamp-1", "b1", "k1"), "devices/lamp-1/commands/b1/k1"},
		{"reply", contracts.ReplyTopic("lamp-1", "b1", "k1"), "devices/lamp-1/replies/b1/k1"},
		{"commands filter", contracts.CommandsFilter("lamp-1"), "devices/lamp-1/commands/#"},
		{"replies filter", contracts.RepliesFilter("b1"), "devices/+/replies/b1/+"},
		{"presence", contracts.PresenceTopic("lamp-1"), "devices/lamp-1/presence"},
		{"results", contracts.ResultsTopic("app-1"), "clients/app-1/results"},
		{"presence filter", contracts.PresenceFilter, "devices/+/presence"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestReplyTopicFor(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"pipeline levels", "devices/d1/commands/X/Y", "devices/d1/replies/X/Y", true},
		{"any levels are copied", "devices/d1/commands/a/b/c", "devices/d1/replies/a/b/c", true},
		{"one level", "devices/d1/commands/X", "devices/d1/replies/X", true},
		{"no levels", "devices/d1/commands", "", false},
		{"empty level", "devices/d1/commands/", "", false},
		{"not a command", "devices/d1/replies/X/Y", "", false},
		{"other root", "clients/d1/commands/X/Y", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := contracts.ReplyTopicFor(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseReplyTopic(t *testing.T) {
	for _, tc := range []struct {
		name, topic, device, route, key string
		ok                              bool
	}{
		{"valid", "devices/lamp-1/replies/b1/k1", "lamp-1", "b1", "k1", true},
		{"round trip of builder", contracts.ReplyTopic("a.b:c_d", "r-1", "0123abcd"), "a.b:c_d", "r-1", "0123abcd", true},
		{"command topic", "devices/lamp-1/commands/b1/k1", "", "", "", false},
		{"extra level", "devices/lamp-1/replies/b1/k1/x", "", "", "", false},
		{"missing key", "devices/lamp-1/replies/b1", "", "", "", false},
		{"empty key", "devices/lamp-1/replies/b1/", "", "", "", false},
		{"empty device", "devices//replies/b1/k1", "", "", "", false},
		{"wildcard device", "devices/+/replies/b1/k1", "", "", "", false},
		{"hash key", "devices/d/replies/b1/#", "", "", "", false},
		{"system topic", "$SYS/broker/uptime", "", "", "", false},
		{"long key", "devices/d/replies/b1/" + string(make([]byte, 65)), "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, r, k, ok := contracts.ParseReplyTopic(tc.topic)
			if ok != tc.ok || d != tc.device || r != tc.route || k != tc.key {
				t.Fatalf("got %q %q %q %v, want %q %q %q %v", d, r, k, ok, tc.device, tc.route, tc.key, tc.ok)
			}
		})
	}
}

func TestParseCommandTopic(t *testing.T) {
	d, r, k, ok := contracts.ParseCommandTopic(contracts.CommandTopic("d1", "r1", "k1"))
	if !ok || d != "d1" || r != "r1" || k != "k1" {
		t.Fatalf("got %q %q %q %v", d, r, k, ok)
	}
	if _, _, _, ok := contracts.ParseCommandTopic("devices/d1/replies/r1/k1"); ok {
		t.Fatal("a reply topic parsed as a command topic")
	}
}

func TestParsePresenceAndResultsTopics(t *testing.T) {
	for _, tc := range []struct {
		name, topic, want string
		ok                bool
		parse             func(string) (string, bool)
	}{
		{"presence", "devices/lamp-1/presence", "lamp-1", true, contracts.ParsePresenceTopic},
		{"presence nested", "devices/a/b/presence", "", false, contracts.ParsePresenceTopic},
		{"presence empty id", "devices//presence", "", false, contracts.ParsePresenceTopic},
		{"presence other", "devices/a/commands", "", false, contracts.ParsePresenceTopic},
		{"results", "clients/app-1/results", "app-1", true, contracts.ParseResultsTopic},
		{"results nested", "clients/a/b/results", "", false, contracts.ParseResultsTopic},
		{"results wildcard", "clients/+/results", "", false, contracts.ParseResultsTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.parse(tc.topic)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("got %q %v, want %q %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestIdentifiers(t *testing.T) {
	long := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = 'a'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name  string
		id    string
		valid func(string) bool
		want  bool
	}{
		{"device plain", "lamp-7", contracts.ValidDeviceID, true},
		{"device all chars", "Az09._:-", contracts.ValidDeviceID, true},
		{"device 128", long(128), contracts.ValidDeviceID, true},
		{"device 129", long(129), contracts.ValidDeviceID, false},
		{"device empty", "", contracts.ValidDeviceID, false},
		{"device slash", "a/b", contracts.ValidDeviceID, false},
		{"device plus", "a+b", contracts.ValidDeviceID, false},
		{"device hash", "a#", contracts.ValidDeviceID, false},
		{"device dollar", "$SYS", contracts.ValidDeviceID, false},
		{"device space", "a b", contracts.ValidDeviceID, false},
		{"device unicode", "lämp", contracts.ValidDeviceID, false},
		{"device nul", "a\x00", contracts.ValidDeviceID, false},
		{"client 64", long(64), contracts.ValidClientID, true},
		{"client 65", long(65), contracts.ValidClientID, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.valid(tc.id); got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewCommandIDIsAKey(t *testing.T) {
	a, b := contracts.NewCommandID(), contracts.NewCommandID()
	if a == b || !contracts.ValidKey(a) || len(a) != 32 {
		t.Fatalf("command ids %q %q", a, b)
	}
}

func FuzzParseReplyTopic(f *testing.F) {
	f.Add("devices/lamp-1/replies/b1/k1")
	f.Add("devices/+/replies/#")
	f.Fuzz(func(t *testing.T, topic string) {
		d, r, k, ok := contracts.ParseReplyTopic(topic)
		if !ok {
			return
		}
		if got := contracts.ReplyTopic(d, r, k); got != topic {
			t.Fatalf("parsed %q into %q %q %q, which builds %q", topic, d, r, k, got)
		}
	})
}
