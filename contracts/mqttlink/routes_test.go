package mqttlink

import "testing"

func TestMatchFilter(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"+/+", "a/b", true},
		{"+", "a", true},
		{"+", "a/b", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"a/#", "b/c", false},
		{"devices/+/replies/r1/+", "devices/d1/replies/r1/k1", true},
		{"devices/+/replies/r1/+", "devices/d1/replies/r2/k1", false},
		{"devices/+/presence", "devices/d1/presence", true},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"", "", true},
		{"$share/g1/devices/+/presence", "devices/d1/presence", true},
		{"$share/g1/devices/+/presence", "devices/d1/replies", false},
		{"a", "", false},
	}
	for _, c := range cases {
		if got := matchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("matchFilter(%q, %q) = %v, want %v", c.filter, c.topic, got, c.want)
		}
	}
}

func TestMatchFilterAllocatesNothing(t *testing.T) {
	n := testing.AllocsPerRun(100, func() { matchFilter("devices/+/replies/r1/+", "devices/d1/replies/r1/k1") })
	if n != 0 {
		t.Fatalf("matchFilter allocates %v times per call, want 0", n)
	}
}
