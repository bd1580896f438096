// Package e2e tests cafe from the outside: the real binaries (cashier,
// barista, caller, devicesim and the cafe CLI), built once by TestMain and
// run as processes against the RabbitMQ and Mosquitto on this machine.
//
// Each test is isolated from every other test and from anything else using
// the brokers: its own AMQP prefix (its queues and exchanges are deleted at
// the end), its own client registry, client id and token, its own device
// ids, its own HTTP ports, and the retained presence messages of its devices
// are cleared at the end. So the tests run in parallel.
//
// The harness (harness_test.go) starts a process with its environment,
// keeps its output (shown when the test fails), sends it signals, waits for
// it with a bound, and always stops it at the end; readiness is /readyz,
// polled, never a fixed sleep. pipeline_test.go starts a pipeline and its
// devices; app_test.go is an app: HTTP to submit, MQTT to receive results.
//
// Flags of this package (after the package on the go test command line):
// -race-binaries builds the binaries with the race detector, and a race
// report in any process's output then fails its test; -isolation-table
// FILE writes TestIsolation's table of attacks (isolation_test.go) to FILE.
//
// The fleet test (fleet_test.go, build tag fleet, task fleet) runs tens of
// thousands of simulated devices on an MQTT tier of its own and measures
// every process's memory; its flags are -fleet-devices, -fleet-edges,
// -fleet-rate, -fleet-duration, -fleet-baristas, -fleet-keepalive,
// -fleet-core-port, -fleet-edge-port and -fleet-out.
//
// Behind the chaos build tag: TestChaos (chaos_test.go, `task chaos`)
// injects faults on this machine's brokers under load and prints a table;
// TestChaosCluster (chaos_cluster_test.go, `task chaos:cluster`) runs the
// same load and table on the three-node RabbitMQ cluster of
// deploy/rabbitmq/cluster.sh, with cluster faults: the queues' leaders
// killed, quorum lost, a node partitioned. It skips when the cluster is not
// running.
//
// TestMain raises -parallel to 16 unless it is given: the tests wait on
// processes and brokers, not on the CPU. TestLoneCommandLatency is not
// parallel, so it measures with the machine to itself.
package e2e
