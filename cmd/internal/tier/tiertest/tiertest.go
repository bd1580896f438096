// Package tiertest starts a scratch MQTT tier for tests: a core Mosquitto
// and N edges bridged to it, written by tier.Write exactly as `task
// tier:up` writes them, on spare ports in a folder of the test's own, and
// stopped when the test ends. The logins are those of a registry the test
// gives and the machine's auth key (brokertest.Key), as on the shared
// broker.
package tiertest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/tier"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
	"cafe/contracts/registry"
)

// Tier is a running scratch tier.
type Tier struct {
	Plan     tier.Plan
	Registry string // the registry file whose logins every broker has
	t        testing.TB
	procs    map[string]*exec.Cmd
}

// Start writes and starts a tier of edges edges with the logins of
// registryYAML (contracts/registry's format), and waits until every
// bridge is connected. The test is skipped, saying why, when Mosquitto is
// not installed.
func Start(t testing.TB, edges int, registryYAML string) *Tier {
	t.Helper()
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Skip("no mosquitto binary to run a scratch tier (apt-get install mosquitto):", err)
	}
	dir := brokertest.ScratchDir(t)
	tr := &Tier{t: t, procs: map[string]*exec.Cmd{}, Registry: filepath.Join(dir, "clients.yaml")}
	if err := os.WriteFile(tr.Registry, []byte(registryYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Load(tr.Registry)
	if err != nil {
		t.Fatal(err)
	}
	key := brokertest.Key()
	dynsec, err := brokerauth.Render(reg, tr.Registry, key)
	if err != nil {
		t.Fatal(err)
	}
	files := tier.Files{Dynsec: dynsec, BridgePassword: key.ServicePassword(identity.Bridge)}
	if err := files.RunAs("mosquitto"); err != nil {
		t.Fatal(err)
	}
	core, first := SparePorts(t, edges)
	tr.Plan = tier.Plan{Dir: filepath.Join(dir, "tier"), Host: "127.0.0.1", CorePort: core, FirstEdgePort: first, Edges: edges}
	if err := tier.Write(tr.Plan, files); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.stopAll)
	for _, b := range tr.Plan.Brokers() {
		tr.Start(b.Name)
	}
	tr.WaitBridges()
	return tr
}

// Core is the core broker; Edge(i) edge i (1-based).
func (tr *Tier) Core() tier.Broker      { return tr.Plan.Core() }
func (tr *Tier) Edge(i int) tier.Broker { return tr.Plan.Edge(i) }

// URL is b's URL with user's login.
func URL(b tier.Broker, user, password string) string {
	u, _ := url.Parse(b.URL())
	u.User = url.UserPassword(user, password)
	return u.String()
}

// As is b's URL logged in as service s (its password from the auth key).
func As(b tier.Broker, s identity.Service) string {
	return URL(b, string(s), brokertest.Key().ServicePassword(s))
}

// DeviceURL is b's URL logged in as device id of generation 1 (what
// brokertest.DevicesYAML registers).
func DeviceURL(b tier.Broker, id string) string {
	return URL(b, id, brokertest.Key().DeviceSecret(id, 1))
}

// Start starts broker name ("core", "edge-2") and waits until it listens.
func (tr *Tier) Start(name string) {
	tr.t.Helper()
	b := tr.broker(name)
	cmd := exec.Command("mosquitto", "-c", b.Conf())
	if err := cmd.Start(); err != nil {
		tr.t.Fatalf("start %s: %v", name, err)
	}
	tr.procs[name] = cmd
	brokertest.Eventually(tr.t, 10*time.Second, name+" never listened on "+b.Addr()+":\n"+tr.Log(name), func() bool {
		c, err := net.Dial("tcp", b.Addr())
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// Kill ends broker name with sig (SIGKILL: a crash, losing what it had not
// saved; SIGTERM: a clean stop, saving its database) and waits for it.
func (tr *Tier) Kill(name string, sig syscall.Signal) {
	tr.t.Helper()
	cmd := tr.procs[name]
	if cmd == nil {
		tr.t.Fatalf("%s does not run", name)
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Wait()
	delete(tr.procs, name)
}

// Pid is the process id of broker name.
func (tr *Tier) Pid(name string) int { return tr.procs[name].Process.Pid }

// Log is what broker name logged so far.
func (tr *Tier) Log(name string) string {
	b, _ := os.ReadFile(tr.broker(name).LogFile())
	return string(b)
}

// WaitBridges waits until the core says every running edge's bridge is
// connected (its retained notification cafe/bridges/edge-N is "1").
func (tr *Tier) WaitBridges() {
	tr.t.Helper()
	var want []string
	for _, e := range tr.Plan.EdgeBrokers() {
		if tr.procs[e.Name] != nil {
			want = append(want, e.Name)
		}
	}
	brokertest.Eventually(tr.t, 15*time.Second, fmt.Sprintf("bridges %v never all connected to the core", want), func() bool {
		states := tr.BridgeStates()
		for _, name := range want {
			if states[name] != "1" {
				return false
			}
		}
		return true
	})
}

// BridgeStates are the core's retained bridge notifications, by edge.
// The retained messages come after the SUBACK, and before a marker the
// client then sends itself on its own sync topic (the broker sends a
// client's messages in order, as mqttlink.Link.Sync relies on): the map is
// complete when the marker is back.
func (tr *Tier) BridgeStates() map[string]string {
	tr.t.Helper()
	id := brokertest.ID(tr.t, "bridges")
	c, _ := brokertest.Hold(tr.t, As(tr.Core(), identity.Admin), id)
	defer c.Disconnect(0)
	var mu sync.Mutex
	states := map[string]string{}
	tok := c.Subscribe("cafe/bridges/+", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		defer mu.Unlock()
		states[strings.TrimPrefix(m.Topic(), "cafe/bridges/")] = string(m.Payload())
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		tr.t.Fatalf("subscribe to the bridges' notifications: %v", tok.Error())
	}
	synced := make(chan struct{})
	var once sync.Once
	topic := mqttlink.SyncTopicPrefix + id
	for _, tok := range []paho.Token{
		c.Subscribe(topic, 1, func(paho.Client, paho.Message) { once.Do(func() { close(synced) }) }),
		c.Publish(topic, 1, false, "sync"),
	} {
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			tr.t.Fatalf("sync on %s: %v", topic, tok.Error())
		}
	}
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		tr.t.Fatalf("the sync marker on %s never came back", topic)
	}
	mu.Lock()
	defer mu.Unlock()
	return maps.Clone(states)
}

func (tr *Tier) broker(name string) tier.Broker {
	for _, b := range tr.Plan.Brokers() {
		if b.Name == name {
			return b
		}
	}
	tr.t.Fatalf("no broker %q in the tier", name)
	return tier.Broker{}
}

func (tr *Tier) stopAll() {
	for name, cmd := range tr.procs {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if tr.t.Failed() {
			tr.t.Logf("log of %s:\n%s", name, tr.Log(name))
		}
	}
}

// SparePorts is a port for the core and the first of edges consecutive
// ports for the edges, all free a moment ago.
func SparePorts(t testing.TB, edges int) (core, first int) {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		if free(base, edges+1) {
			return base, base + 1
		}
	}
	t.Fatal("no run of free ports for a scratch tier")
	return 0, 0
}

func free(base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
