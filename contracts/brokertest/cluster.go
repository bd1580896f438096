package brokertest

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"cafe/contracts/amqplink"
)

// Cluster is the three-node RabbitMQ cluster of `task cluster:up`
// (deploy/rabbitmq/cluster.sh), for the tests that kill, stop and
// partition its nodes. Its nodes are numbered 1 to 3.
type Cluster struct {
	script string
	urls   string // without credentials, comma-separated
}

// ClusterNodes is how many nodes the cluster has.
const ClusterNodes = 3

// ClusterOf returns the cluster, with every node running (a node a former
// test left stopped is started), or skips the test when the cluster is not
// up: `task cluster:up` starts it (`task chaos:cluster` does, then runs
// these tests). CAFE_TEST_AMQP_URL is pointed at the cluster for the rest
// of the test, so Topology, Dial and the AMQPURL helpers use it.
func ClusterOf(t *testing.T) *Cluster {
	t.Helper()
	c := &Cluster{script: clusterScript()}
	out, err := exec.Command("bash", c.script, "urls").Output()
	if err != nil {
		t.Fatalf("%s urls: %v", c.script, err)
	}
	c.urls = strings.TrimSpace(string(out))
	if _, err := amqplink.ParseURLs(c.urls); err != nil {
		t.Fatalf("%s urls: %v", c.script, err)
	}
	if !c.anyUp() {
		t.Skip("the RabbitMQ cluster is not running (nothing answers on " + c.urls + "): start it with `task cluster:up`, or run `task chaos:cluster`, which does")
	}
	for n := 1; n <= ClusterNodes; n++ {
		if !c.Up(n) {
			c.Start(t, n)
		}
	}
	t.Setenv("CAFE_TEST_AMQP_URL", c.urls)
	return c
}

// clusterScript is deploy/rabbitmq/cluster.sh of this checkout.
func clusterScript() string {
	_, file, _, _ := runtime.Caller(0) // contracts/brokertest/cluster.go
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "rabbitmq", "cluster.sh")
}

func (c *Cluster) anyUp() bool {
	for n := 1; n <= ClusterNodes; n++ {
		if c.Up(n) {
			return true
		}
	}
	return false
}

// URLs is the cluster's URL setting (every node), without credentials.
func (c *Cluster) URLs() string { return c.urls }

// Addr is node n's AMQP host:port.
func (c *Cluster) Addr(n int) string { return "127.0.0.1:" + strconv.Itoa(5680+n) }

// Up reports whether node n accepts AMQP connections.
func (c *Cluster) Up(n int) bool { return answers(c.Addr(n)) }

// run runs cluster.sh with args and returns its output, failing the test
// when it fails.
func (c *Cluster) run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("bash", append([]string{c.script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Kill kills node n's Erlang VM with SIGKILL.
func (c *Cluster) Kill(t testing.TB, n int) { c.run(t, "kill", strconv.Itoa(n)) }

// Stop stops node n gracefully.
func (c *Cluster) Stop(t testing.TB, n int) { c.run(t, "stop", strconv.Itoa(n)) }

// Start starts node n and waits until it has booted.
func (c *Cluster) Start(t testing.TB, n int) { c.run(t, "start", strconv.Itoa(n)) }

// Partition cuts node n off from the other two; Heal undoes it.
func (c *Cluster) Partition(t testing.TB, n int) { c.run(t, "partition", strconv.Itoa(n)) }

// Heal lets node n see the other nodes again.
func (c *Cluster) Heal(t testing.TB, n int) { c.run(t, "heal", strconv.Itoa(n)) }

// Leader is the node that leads quorum queue queue.
func (c *Cluster) Leader(t testing.TB, queue string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(lastLine(c.run(t, "leader", queue))))
	if err != nil {
		t.Fatalf("cluster.sh leader %s: %v", queue, err)
	}
	return n
}

// Members is the nodes that hold a replica of quorum queue queue, as
// RabbitMQ lists them (cafe-1@localhost, ...).
func (c *Cluster) Members(t testing.TB, queue string) []string {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-n", "cafe-1@localhost", "-q", "list_queues", "name", "members", "--no-table-headers").Output()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues name members: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, members, ok := strings.Cut(line, "\t")
		if ok && name == queue {
			return strings.FieldsFunc(members, func(r rune) bool { return strings.ContainsRune("[]', ", r) })
		}
	}
	t.Fatalf("queue %s is not in rabbitmqctl list_queues", queue)
	return nil
}

// WaitAllUp waits until every node is back and running in the cluster.
func (c *Cluster) WaitAllUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "the cluster's nodes did not all come back", func() bool {
		for n := 1; n <= ClusterNodes; n++ {
			if !c.Up(n) {
				return false
			}
		}
		out, err := exec.Command("rabbitmqctl", "-n", "cafe-1@localhost", "-q", "eval", "length(rabbit_nodes:all_running()).").Output()
		return err == nil && strings.TrimSpace(string(out)) == fmt.Sprint(ClusterNodes)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// answers reports whether something accepts TCP connections at addr.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// NodeName is node n's Erlang name.
func NodeName(n int) string { return "cafe-" + strconv.Itoa(n) + "@localhost" }

// All runs cluster.sh command (start, stop, kill) on the nodes at once
// and waits for all. Nodes stopped one after the other must start
// together: each waits for the others it last saw running.
func (c *Cluster) All(t testing.TB, command string, nodes ...int) {
	t.Helper()
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			out, err := exec.Command("bash", c.script, command, strconv.Itoa(n)).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("cluster.sh %s %d: %w\n%s", command, n, err, out)
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// MoveLeader makes another node lead quorum queue queue: the leader's
// replica is removed (the others elect a leader among them) and added
// back, so the queue still has a replica on every node.
func (c *Cluster) MoveLeader(t testing.TB, queue string) {
	t.Helper()
	old := c.Leader(t, queue)
	other := NodeName(old%ClusterNodes + 1)
	for _, args := range [][]string{{"delete_member", queue, NodeName(old)}, {"add_member", queue, NodeName(old)}} {
		if out, err := exec.Command("rabbitmq-queues", append([]string{"-n", other}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("rabbitmq-queues %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	Eventually(t, 30*time.Second, "queue "+queue+" has no new leader", func() bool { return c.Leader(t, queue) != old })
}
