package tier

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"cafe/deploy/mosquitto"
)

// Plan is a tier on one machine: a core broker and Edges edge brokers on
// Host, the core on CorePort and the edges on FirstEdgePort,
// FirstEdgePort+1, ..., each in its own folder below Dir (Dir/core,
// Dir/edge-1, ...).
type Plan struct {
	Dir           string
	Host          string
	CorePort      int
	FirstEdgePort int
	Edges         int
}

// Defaults of `task tier:up` (deploy/README.md): ports clear of the
// shared broker's 1883 and 8883.
const (
	DefaultDir           = "/tmp/cafe-tier"
	DefaultHost          = "127.0.0.1"
	DefaultCorePort      = 1893
	DefaultFirstEdgePort = 1901
	DefaultEdges         = 2
	MaxEdges             = 64
)

// Validate says what is wrong with p, or nil.
func (p Plan) Validate() error {
	var errs []error
	if p.Dir == "" || !filepath.IsAbs(p.Dir) {
		errs = append(errs, fmt.Errorf("dir %q: want an absolute path", p.Dir))
	}
	if p.Host == "" {
		errs = append(errs, errors.New("host: want an address such as 127.0.0.1"))
	}
	if p.Edges < 1 || p.Edges > MaxEdges {
		errs = append(errs, fmt.Errorf("edges %d: want 1 to %d", p.Edges, MaxEdges))
	}
	if p.CorePort < 1 || p.CorePort > 65535 || p.FirstEdgePort < 1 || p.FirstEdgePort+p.Edges-1 > 65535 {
		errs = append(errs, fmt.Errorf("ports %d and %d..%d: want 1 to 65535", p.CorePort, p.FirstEdgePort, p.FirstEdgePort+p.Edges-1))
	}
	if p.CorePort >= p.FirstEdgePort && p.CorePort < p.FirstEdgePort+p.Edges {
		errs = append(errs, fmt.Errorf("core port %d is one of the edges' %d..%d", p.CorePort, p.FirstEdgePort, p.FirstEdgePort+p.Edges-1))
	}
	return errors.Join(errs...)
}

// Core is the core broker.
func (p Plan) Core() Broker {
	return Broker{Name: "core", Host: p.Host, Port: p.CorePort, Dir: filepath.Join(p.Dir, "core")}
}

// Edge is edge i (1-based).
func (p Plan) Edge(i int) Broker {
	name := "edge-" + strconv.Itoa(i)
	return Broker{Name: name, Host: p.Host, Port: p.FirstEdgePort + i - 1, Dir: filepath.Join(p.Dir, name)}
}

// EdgeBrokers are the edges, in order.
func (p Plan) EdgeBrokers() []Broker {
	out := make([]Broker, p.Edges)
	for i := range out {
		out[i] = p.Edge(i + 1)
	}
	return out
}

// Brokers are the core, then the edges.
func (p Plan) Brokers() []Broker { return append([]Broker{p.Core()}, p.EdgeBrokers()...) }

// Files are what Write needs besides the plan: the dynamic security
// plugin's file for every broker (brokerauth.Render: the same logins on
// each, so a device may connect to any edge), cafe-bridge's password, and
// the user the brokers run as (UID -1: leave the files to whoever writes
// them, for brokers not started as root; RunAs sets them).
type Files struct {
	Dynsec         []byte
	BridgePassword string
	UID, GID       int
	// KeepDynsec leaves a broker's plugin file as it is when it exists: a
	// broker that ran owns it (the reconciler kept it current).
	KeepDynsec bool
}

// RunAs makes the files the given user's when this process is root:
// Mosquitto started as root runs as its own user (mosquitto), who must
// own its files. Otherwise (or without such a user) the files stay the
// writer's, as Mosquitto then runs as the writer too.
func (f *Files) RunAs(name string) error {
	f.UID, f.GID = -1, -1
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil // no such user: Mosquitto stays root, and so may the files
	}
	if f.UID, err = strconv.Atoi(u.Uid); err != nil {
		return fmt.Errorf("user %s: uid %q: %w", name, u.Uid, err)
	}
	if f.GID, err = strconv.Atoi(u.Gid); err != nil {
		return fmt.Errorf("user %s: gid %q: %w", name, u.Gid, err)
	}
	return nil
}

// Write makes each broker's folder with its config, ACL file and plugin
// file.
func Write(p Plan, f Files) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return err
	}
	if err := f.own(p.Dir); err != nil {
		return err
	}
	core := p.Core()
	if err := writeBroker(core, nil, f); err != nil {
		return err
	}
	for _, e := range p.EdgeBrokers() {
		if err := writeBroker(e, &Bridge{Name: e.Name, Core: core.Addr(), Password: f.BridgePassword}, f); err != nil {
			return err
		}
	}
	return nil
}

func writeBroker(b Broker, bridge *Bridge, f Files) error {
	conf, err := Config(b, bridge)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(b.Dir, 0o750); err != nil {
		return err
	}
	if err := f.own(b.Dir); err != nil {
		return err
	}
	if err := f.write(b.Conf(), []byte(conf)); err != nil { // holds the bridge's password: 0600
		return err
	}
	if err := f.write(b.ACLFile(), []byte(mosquitto.ACL)); err != nil {
		return err
	}
	if _, err := os.Stat(b.DynsecFile()); err == nil && f.KeepDynsec {
		return nil
	}
	return f.write(b.DynsecFile(), f.Dynsec)
}

// write replaces name atomically, mode 0600, owned by the brokers' user.
func (f Files) write(name string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(name), "."+filepath.Base(name)+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := f.own(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

func (f Files) own(name string) error {
	if f.UID < 0 {
		return nil
	}
	if err := os.Chown(name, f.UID, f.GID); err != nil {
		return fmt.Errorf("hand %s to the brokers' user: %w", name, err)
	}
	return nil
}
