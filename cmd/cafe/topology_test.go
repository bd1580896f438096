package main

import (
	"strings"
	"testing"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

// cafe topology declares a pipeline's exchanges and queues as cafe-admin,
// so that roles logged in with least privilege (their check is passive)
// find them; a second run changes nothing.
func TestTopologyDeclaresWhatTheRolesCheck(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "topo")
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	conn := brokertest.Dial(t)
	defer conn.Close()
	if err := amqplink.Check(conn, top); err == nil {
		t.Fatal("the topology exists before cafe topology ran")
	}
	t.Setenv("CAFE_AMQP_URL", brokertest.AMQPURLAs(identity.Admin))
	for run := range 2 {
		out, err := runTopology(t, "--amqp-prefix", top.Prefix)
		if err != nil || !strings.Contains(out, "queue    "+top.CommandsQueue()) {
			t.Fatalf("run %d: cafe topology (%v):\n%s", run+1, err, out)
		}
	}
	roleConn, err := amqplink.Dial(amqplink.Config{URL: brokertest.AMQPURLAs(identity.Barista)})
	if err != nil {
		t.Fatal(err)
	}
	defer roleConn.Close()
	if err := amqplink.Check(roleConn, top); err != nil {
		t.Fatalf("as cafe-barista after cafe topology: %v", err)
	}
}

// A login that may not declare (a role's) gets an error that says who it
// was and what to run instead, and exit status non-zero.
func TestTopologyRefusedForARole(t *testing.T) {
	prefix := brokertest.ID(t, "topo")
	t.Setenv("CAFE_AMQP_URL", brokertest.AMQPURLAs(identity.Barista))
	out, err := runTopology(t, "--amqp-prefix", prefix)
	if err == nil || !strings.Contains(err.Error(), "declare the topology") {
		t.Fatalf("cafe topology as cafe-barista: err %v, out:\n%s", err, out)
	}
}

// runTopology runs cafe topology with args and returns its output.
func runTopology(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := topologyCommand()
	var out strings.Builder
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}
