package tier_test

import (
	"strings"
	"testing"

	"cafe/cmd/internal/tier"
)

func TestConfig(t *testing.T) {
	p := tier.Plan{Dir: "/srv/tier", Host: "127.0.0.1", CorePort: 1893, FirstEdgePort: 1901, Edges: 2}
	core, err := tier.Config(p.Core(), nil)
	if err != nil {
		t.Fatal(err)
	}
	edge, err := tier.Config(p.Edge(2), &tier.Bridge{Name: "edge-2", Core: p.Core().Addr(), Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, conf string
		want       []string // lines that must be there, in this order
		not        []string // lines that must not
	}{
		{"core", core,
			[]string{"listener 1893 127.0.0.1", "allow_anonymous false", "plugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
				"plugin_opt_config_file /srv/tier/core/dynsec.json", "acl_file /srv/tier/core/cafe.acl", "persistence_location /srv/tier/core/",
				"pid_file /srv/tier/core/mosquitto.pid", "log_dest file /srv/tier/core/mosquitto.log"},
			[]string{"listener 1883 127.0.0.1", "listener 8883 127.0.0.1", "connection edge-2", "certfile /etc/mosquitto/cafe/tls/mqtt-server.pem"}},
		{"edge", edge,
			[]string{"listener 1902 127.0.0.1", "plugin_opt_config_file /srv/tier/edge-2/dynsec.json", "connection edge-2", "address 127.0.0.1:1893",
				"cleansession false", "remote_clientid cafe-bridge-edge-2", "remote_username cafe-bridge", "remote_password pw",
				"topic devices/+/commands/# in 1", "topic clients/+/results in 1", "topic devices/+/replies/# out 1", "topic devices/+/presence out 1"},
			[]string{"listener 8883 127.0.0.1", "topic devices/+/replies/# both 1"}},
	} {
		lines := strings.Split(c.conf, "\n")
		at := 0
		for _, w := range c.want {
			i := index(lines[at:], w)
			if i < 0 {
				t.Errorf("%s config: no line %q (after line %d)", c.name, w, at)
				continue
			}
			at += i + 1
		}
		for _, n := range c.not {
			if index(lines, n) >= 0 {
				t.Errorf("%s config has %q", c.name, n)
			}
		}
	}
}

func index(lines []string, want string) int {
	for i, l := range lines {
		if l == want {
			return i
		}
	}
	return -1
}

func TestPlanValidate(t *testing.T) {
	ok := tier.Plan{Dir: "/srv/tier", Host: "127.0.0.1", CorePort: 1893, FirstEdgePort: 1901, Edges: 2}
	for _, c := range []struct {
		name string
		edit func(*tier.Plan)
		want string // in the error; "" for none
	}{
		{"defaults", func(*tier.Plan) {}, ""},
		{"relative dir", func(p *tier.Plan) { p.Dir = "tier" }, "absolute path"},
		{"no edges", func(p *tier.Plan) { p.Edges = 0 }, "edges 0"},
		{"too many edges", func(p *tier.Plan) { p.Edges = tier.MaxEdges + 1 }, "edges 65"},
		{"core among the edges", func(p *tier.Plan) { p.CorePort = 1902 }, "core port 1902"},
		{"ports past 65535", func(p *tier.Plan) { p.FirstEdgePort = 65535 }, "want 1 to 65535"},
	} {
		p := ok
		c.edit(&p)
		err := p.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}
