//go:build chaos

package e2e

// The chaos suite on the three-node RabbitMQ cluster of `task cluster:up`
// (deploy/rabbitmq/cluster.sh): the same load, counters and table as
// TestChaos (chaos_test.go), with cluster faults. Every service is given
// the cluster's three URLs (CAFE_AMQP_URL, node 1 first), and the topology
// is declared through node 1, so node 1 leads every queue at the start.
// Run it with `task chaos:cluster`, which starts the cluster first; it
// skips when the cluster is not running. It never touches the default
// node on 5672.

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// How long the cluster faults last: parameters of the scenarios (the
// table's rows say them), not evidence of anything.
const (
	noQuorumFor  = 8 * time.Second
	partitionFor = 10 * time.Second
)

func TestChaosCluster(t *testing.T) {
	c := brokertest.ClusterOf(t) // CAFE_TEST_AMQP_URL: the cluster, for the services too (baseEnv)
	runChaos(t, clusterScenarios(c))
}

func clusterScenarios(cl *brokertest.Cluster) []scenario {
	base := setup{baristas: 2, callers: 1}
	load := func(sc scenario) scenario {
		sc.setup, sc.devices, sc.flags, sc.rate, sc.total, sc.timeout = base, 8, []string{"--latency", "10ms"}, 100, 3000, "120s"
		return sc
	}
	return []scenario{
		load(scenario{
			name: "cluster_kill_commands_leader", summary: "`kill -9` of the node leading the commands queue (every service is connected to it), started again after the row",
			fault: killLeader(cl, contracts.Topology.CommandsQueue),
		}),
		load(scenario{
			name: "cluster_kill_results_leader", summary: "`kill -9` of the node leading the results queue (moved off the commands queue's leader before the load), started again after the row",
			prepare: func(t *testing.T, c *chaosRun) {
				if cl.Leader(t, c.p.top.ResultsQueue()) == cl.Leader(t, c.p.top.CommandsQueue()) {
					cl.MoveLeader(t, c.p.top.ResultsQueue())
				}
			},
			fault: killLeader(cl, contracts.Topology.ResultsQueue),
		}),
		load(scenario{
			name: "cluster_no_quorum", summary: "two of three nodes stopped for at least 8s and until 10 submissions were refused (no quorum: the cashier must answer 503, never 202), then started again",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				cl.All(t, "stop", 2, 3)
				c.noQuorum(t, noQuorumFor)
				cl.All(t, "start", 2, 3)
				cl.WaitAllUp(t, 2*time.Minute)
				return time.Now()
			},
		}),
		load(scenario{
			name: "cluster_partition", summary: "the node every service is on (and the queues' leader) cut off from the other two for 10s, then healed",
			fault: func(t *testing.T, c *chaosRun) time.Time {
				n := cl.Leader(t, c.p.top.CommandsQueue())
				cl.Partition(t, n)
				t.Cleanup(func() { cl.Heal(t, n) }) // also if the test fails meanwhile
				time.Sleep(partitionFor)            // the fault itself: its length is the scenario's, not evidence
				cl.Heal(t, n)
				cl.WaitAllUp(t, 2*time.Minute)
				return time.Now()
			},
		}),
	}
}

// killLeader is the fault "kill -9 of the node leading queue"; the node is
// started again when the row is done.
func killLeader(cl *brokertest.Cluster, queue func(contracts.Topology) string) func(*testing.T, *chaosRun) time.Time {
	return func(t *testing.T, c *chaosRun) time.Time {
		n := cl.Leader(t, queue(c.p.top))
		cl.Kill(t, n)
		t.Cleanup(func() { cl.Start(t, n); cl.WaitAllUp(t, 2*time.Minute) })
		return time.Now()
	}
}

// noQuorumRefusals is how many 503s noQuorum must have seen before it
// ends: the evidence that the cashier refuses without a quorum is a count
// of refusals, not the outage's length (a refusal can take the cashier's
// whole confirm timeout, so 8 s alone might have held only one or two).
const noQuorumRefusals = 10

// noQuorum submits commands one after another while the cluster has no
// quorum, for d and until the cashier has refused noQuorumRefusals of them
// (503), and fails the test if the cashier takes one (202): nothing can be
// confirmed without a quorum. The commands it sends count as refused
// (their results, if they come after all, as delivered late).
func (c *chaosRun) noQuorum(t *testing.T, d time.Duration) {
	t.Helper()
	httpc := &http.Client{Timeout: 10 * time.Second}
	defer httpc.CloseIdleConnections()
	statuses := map[int]int{}
	end, giveUp := time.Now().Add(d), time.Now().Add(d+time.Minute)
	for i := 0; (time.Now().Before(end) || statuses[http.StatusServiceUnavailable] < noQuorumRefusals) && time.Now().Before(giveUp); i++ {
		id := fmt.Sprintf("nq-%d", i)
		c.refusedIDs.Store(id, true)
		statuses[c.post(httpc, c.fleet.ids[0], `{"jsonrpc":"2.0","method":"echo","id":"`+id+`"}`, "60s")]++
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("without quorum the cashier answered (status: count) %v", statuses)
	if statuses[http.StatusAccepted] > 0 {
		t.Errorf("the cashier answered 202 to %d commands while the cluster had no quorum", statuses[http.StatusAccepted])
	}
	if statuses[http.StatusServiceUnavailable] < noQuorumRefusals {
		t.Errorf("the cashier answered 503 to fewer than %d commands while the cluster had no quorum: %v", noQuorumRefusals, statuses)
	}
}
