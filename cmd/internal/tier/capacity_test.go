//go:build tierbench

package tier_test

// What one edge holds, and what bulk logins cost: measurements on a
// scratch tier, run by `task tier:bench` (not in CI: about a minute).
//
//	go test -tags tierbench -run 'Capacity|Logins' -v ./cmd/internal/tier/ -tier-clients 5000 -tier-logins 15000

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"cafe/cmd/internal/brokerauth"
	"cafe/cmd/internal/tier/tiertest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
	"cafe/contracts/mqttlink/dynsec"
	"cafe/contracts/registry"
)

var (
	tierClients = flag.Int("tier-clients", 5000, "idle devices connected to one edge by TestEdgeCapacity")
	tierLogins  = flag.Int("tier-logins", 15000, "device logins on the edge of TestBulkLogins")
	tierChanges = flag.Int("tier-changes", 100, "logins added one at a time over $CONTROL by TestBulkLogins")
)

// rssSettle is how long TestEdgeCapacity lets a broker's resident memory
// settle before it reads it: a measurement's pause (the test reports
// figures and asserts none), not evidence of anything.
const rssSettle = time.Second

// TestEdgeCapacity connects -tier-clients idle devices to edge-1 as
// devices do (their own login, a subscription to their commands, a
// retained presence with a last will) and reports what each costs the
// edge, and the core (their presence, bridged up), in memory.
func TestEdgeCapacity(t *testing.T) {
	n := *tierClients
	ids := deviceIDs(t, n)
	tr := tiertest.Start(t, 1, brokertest.DevicesYAML(ids...))
	edge, core := tr.Pid("edge-1"), tr.Pid("core")
	time.Sleep(rssSettle)
	edge0, core0 := rssKB(t, edge), rssKB(t, core)

	began := time.Now()
	conns := connectAll(t, tr.Edge(1).Addr(), ids)
	took := time.Since(began)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The presence reached the core: the bridge carried every one.
	brokertest.Eventually(t, 60*time.Second, "the core never had every device's presence", func() bool {
		return countRetained(t, tr, "devices/+/presence") >= n
	})
	time.Sleep(2 * rssSettle)
	edge1, core1 := rssKB(t, edge), rssKB(t, core)
	perConn := float64(edge1-edge0) * 1024 / float64(n)
	t.Logf("edge-1 with %d device logins: %d kB before, %d kB with %d idle devices connected (%.1f KB each; %d open files); connected in %v (%.0f/s)",
		n, edge0, edge1, n, perConn/1000, openFiles(t, edge), took.Round(time.Millisecond), float64(n)/took.Seconds())
	t.Logf("core: %d kB before, %d kB with their %d retained presence messages (%.2f KB each)", core0, core1, n, float64(core1-core0)*1024/float64(n)/1000)
	const limit = 20000 // open files a process may hold here (ulimit -n)
	held := limit - 20  // its listener, log, database, bridge
	t.Logf("extrapolated to the %d open files limit: %d devices per edge, about %.0f MB", limit, held, (float64(edge0)*1024+perConn*float64(held))/1e6)
}

// TestBulkLogins compares the two ways of giving an edge -tier-logins
// device logins: the plugin's whole file written before the broker starts
// (the bulk path), and one $CONTROL createClient at a time on the running
// broker (the plugin saves its whole file after each).
func TestBulkLogins(t *testing.T) {
	n := *tierLogins
	ids := deviceIDs(t, n)
	doc := brokertest.DevicesYAML(ids...)
	reg, err := registry.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	file, err := brokerauth.Render(reg, "/bench/clients.yaml", brokertest.Key())
	if err != nil {
		t.Fatal(err)
	}
	render := time.Since(began)
	tr := tiertest.Start(t, 1, doc)
	tr.Kill("edge-1", syscall.SIGTERM)
	began = time.Now()
	tr.Start("edge-1")
	start := time.Since(began)
	tr.WaitBridges()
	t.Logf("bulk: %d logins rendered in %v (%.1f MB file); the edge starts with them in %v, RSS %d kB",
		n, render.Round(time.Millisecond), float64(len(file))/1e6, start.Round(time.Millisecond), rssKB(t, tr.Pid("edge-1")))

	control := controlOn(t, tiertest.As(tr.Edge(1), identity.Admin))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	k := *tierChanges
	began = time.Now()
	for i := range k {
		id := fmt.Sprintf("%s-live-%d", ids[0], i)
		if _, err := control.Do(ctx, dynsec.Command{"command": "createClient", "username": id, "password": "p-" + id, "clientid": id, "textname": "device"}); err != nil {
			t.Fatal(err)
		}
	}
	each := time.Since(began) / time.Duration(k)
	t.Logf("live: %d createClient over $CONTROL with %d logins held: %v each; %d logins this way would take %v",
		k, n, each.Round(time.Microsecond), n, (each * time.Duration(n)).Round(time.Second))
}

func deviceIDs(t *testing.T, n int) []string {
	prefix := brokertest.ID(t, "cap")
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + strconv.Itoa(i+1)
	}
	return ids
}

// connectAll connects every device to addr (16 at a time) and returns
// the connections, each logged in, subscribed and announced.
func connectAll(t *testing.T, addr string, ids []string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, len(ids))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				c, err := idleDevice(addr, ids[i])
				if err != nil {
					errs <- fmt.Errorf("device %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return conns
}

// idleDevice is one device as the contract has it, in raw MQTT 3.1.1 so
// that thousands cost the test little: CONNECT with its login and a
// retained last will, SUBSCRIBE to its commands, its retained presence.
func idleDevice(addr, id string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	presence := contracts.PresenceTopic(id)
	var p []byte
	p = append(p, str("MQTT")...)
	p = append(p, 4, 0x80|0x40|0x20|0x08|0x04|0x02) // user, password, will retained QoS 1, clean
	p = binary.BigEndian.AppendUint16(p, 600)       // keep-alive: idle for the whole test
	for _, s := range []string{id, presence, `{"online":false}`, id, brokertest.Key().DeviceSecret(id, 1)} {
		p = append(p, str(s)...)
	}
	r := bufio.NewReader(c)
	if err := exchange(c, r, 0x10, p, 0x20); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	sub := append(binary.BigEndian.AppendUint16(nil, 1), str(contracts.CommandsFilter(id))...)
	if err := exchange(c, r, 0x82, append(sub, 1), 0x90); err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if _, err := c.Write(packet(0x31, append(str(presence), `{"online":true}`...))); err != nil { // QoS 0, retained
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// exchange sends one packet and reads the answer of type want.
func exchange(c net.Conn, r *bufio.Reader, kind byte, body []byte, want byte) error {
	if _, err := c.Write(packet(kind, body)); err != nil {
		return err
	}
	head := make([]byte, 2)
	if _, err := io.ReadFull(r, head); err != nil {
		return err
	}
	rest := make([]byte, head[1])
	if _, err := io.ReadFull(r, rest); err != nil {
		return err
	}
	if head[0]&0xf0 != want || (want == 0x20 && rest[1] != 0) || (want == 0x90 && rest[len(rest)-1] > 2) {
		return fmt.Errorf("answer %x %x: refused", head, rest)
	}
	return nil
}

func packet(kind byte, body []byte) []byte {
	out := []byte{kind}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func str(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }

// countRetained counts the retained messages on the core matching filter.
func countRetained(t *testing.T, tr *tiertest.Tier, filter string) int {
	t.Helper()
	in := listen(t, tiertest.As(tr.Core(), identity.Admin), brokertest.ID(t, "count"), filter)
	in.sync(t) // the retained messages came before the marker
	return len(in.all())
}

func controlOn(t *testing.T, rawURL string) *dynsec.Control {
	t.Helper()
	link, err := mqttlink.New(mqttlink.Config{URL: rawURL, ClientID: brokertest.ID(t, "dynsec"), CleanSession: true}, brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	brokertest.Run(t, link)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := link.WaitConnected(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := dynsec.NewControl(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	t.Fatal(errors.New("no VmRSS"))
	return 0
}

func openFiles(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
