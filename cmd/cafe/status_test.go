package main

import (
	"encoding/json"
	"strings"
	"testing"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/status"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

func TestStatusRefusesBadInputClearly(t *testing.T) {
	clitest.ExpectRefused(t, statusCommand, []clitest.Case{
		{Name: "unknown flag", Args: []string{"--colour"}, Want: "unknown flag: --colour"},
		{Name: "interval", Args: []string{"--watch", "--interval", "10ms"}, Want: "--interval 10ms: want at least 500ms"},
		{Name: "bad interval", Args: []string{"--interval", "soon"}, Want: `invalid argument "soon" for "--interval"`},
		{Name: "timeout", Args: []string{"--timeout", "0s"}, Want: "--timeout 0s"},
		{Name: "management url", Args: []string{"--management-url", "127.0.0.1:15672"}, Want: `--management-url (CAFE_MANAGEMENT_URL) "127.0.0.1:15672": want http://host:port`},
		{Name: "management url from env", Env: map[string]string{"CAFE_MANAGEMENT_URL": "ftp://x"}, Want: `"ftp://x"`},
		{Name: "metrics url", Args: []string{"--barista-metrics", "localhost:9101"}, Want: `"localhost:9101": want http://host:port`},
		{Name: "prefix", Args: []string{"--amqp-prefix", "a b"}, Want: "CAFE_AMQP_PREFIX"},
	})
}

func runStatus(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := statusCommand()
	var out strings.Builder
	cmd.SetArgs(append([]string{"--timeout", "20s"}, args...)) // a loaded machine is slow, not broken
	cmd.SetOut(&out)
	cmd.SetErr(new(strings.Builder))
	err := cmd.Execute()
	return out.String(), err
}

func TestStatusJSONAndText(t *testing.T) {
	top := brokertest.Topology(t)
	t.Setenv("CAFE_AMQP_URL", brokertest.AMQPURLAs(identity.Ops))
	t.Setenv("CAFE_MQTT_URL", brokertest.MQTTURLAs(identity.Ops))
	out, err := runStatus(t, "--amqp-prefix", top.Prefix, "--json", "--devices", "none-such-*")
	var s status.Snapshot
	if err != nil || json.Unmarshal([]byte(out), &s) != nil || len(s.Queues) != len(top.Queues()) || s.Dead == nil || s.Dead.Total != 0 || s.Devices == nil || s.Ledger == nil || s.Ledger.Waiting != 0 {
		t.Fatalf("status --json (%v):\n%s", err, out)
	}
	out, err = runStatus(t, "--amqp-prefix", top.Prefix)
	for _, want := range []string{top.CommandsQueue(), "baristas", "devices", "dead letters    0", "oldest waiting  0s (nothing waiting)", "ledger          0 events waiting, 0 ledgers"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("status lacks %q (%v):\n%s", want, err, out)
		}
	}
}

// TestStatusBrokerDown: the management API is down; status says so, with
// what to do, shows the rest, and exits 1.
func TestStatusBrokerDown(t *testing.T) {
	top := brokertest.Topology(t)
	t.Setenv("CAFE_AMQP_URL", brokertest.AMQPURLAs(identity.Ops))
	t.Setenv("CAFE_MQTT_URL", brokertest.MQTTURLAs(identity.Ops))
	out, err := runStatus(t, "--amqp-prefix", top.Prefix, "--management-url", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(out, "rabbitmq management: RabbitMQ management unreachable at 127.0.0.1:1") ||
		!strings.Contains(out, "start it: bash deploy/brokers.sh") || !strings.Contains(out, "dead letters    0") || !strings.Contains(out, "online, of") {
		t.Fatalf("status with management down (%v):\n%s", err, out)
	}
}
