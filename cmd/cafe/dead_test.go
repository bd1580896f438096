package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cmd/internal/cli/clitest"
	"cafe/cmd/internal/deadletter"
	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
)

func TestDeadRefusesBadInputClearly(t *testing.T) {
	clitest.ExpectRefused(t, deadCommand, []clitest.Case{
		{Name: "unknown filter", Args: []string{"list", "--colour", "red"}, Want: "unknown flag: --colour"},
		{Name: "unknown reason", Args: []string{"list", "--reason", "tired"}, Want: `--reason "tired"`},
		{Name: "bad duration", Args: []string{"list", "--older-than", "5x"}, Want: `invalid argument "5x" for "--older-than"`},
		{Name: "negative duration", Args: []string{"list", "--newer-than", "-5m"}, Want: "positive duration"},
		{Name: "bad pattern", Args: []string{"list", "--device", "lamp-["}, Want: "--device"},
		{Name: "negative limit", Args: []string{"list", "--limit", "-3"}, Want: "--limit -3"},
		{Name: "replay of nothing chosen", Args: []string{"replay"}, Want: "choose what to replay"},
		{Name: "purge of nothing chosen", Args: []string{"purge"}, Want: "choose what to purge"},
		{Name: "rate zero", Args: []string{"replay", "--all", "--rate", "0"}, Want: `--rate "0": want a number above 0`},
		{Name: "rate negative", Args: []string{"replay", "--all", "--rate", "-5/s"}, Want: `--rate "-5/s": want a number above 0`},
		{Name: "rate unit", Args: []string{"replay", "--all", "--rate", "5/h"}, Want: "want N/s or N/m"},
		{Name: "rate text", Args: []string{"replay", "--all", "--rate", "fast"}, Want: `--rate "fast"`},
		{Name: "extend negative", Args: []string{"replay", "--all", "--extend", "-1s"}, Want: "--extend -1s"},
		{Name: "show without id", Args: []string{"show"}, Want: "accepts 1 arg"},
		{Name: "scan limit", Args: []string{"list", "--scan-limit", "0"}, Want: "--scan-limit 0"},
		{Name: "broker down", Args: []string{"list", "--amqp-url", "amqp://cafe-ops:x@127.0.0.1:1/"}, Want: "cannot reach RabbitMQ at 127.0.0.1:1 as cafe-ops"},
		{Name: "prefix", Args: []string{"list"}, Env: map[string]string{"CAFE_AMQP_PREFIX": "a b"}, Want: "CAFE_AMQP_PREFIX"},
	})
}

// deadEnv points `cafe dead` at a test topology (with n dead letters, for
// app-1 on lamp-1..n) as cafe-ops, a registry where app-1 may command
// lamp-1 only, and an audit file; it returns the letters' ids and the
// audit file.
func deadEnv(t *testing.T, n int) (contracts.Topology, []string, string) {
	t.Helper()
	top := brokertest.Topology(t)
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, _ := conn.Channel()
	defer ch.Close()
	if err := amqplink.Declare(ch, top); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		meta := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-" + string(rune('1'+i)),
			Deadline: time.Now().Add(time.Hour), AcceptedAt: time.Now()}
		ids = append(ids, meta.CommandID)
		if err := ch.Publish(top.CommandsExchange(), contracts.RoutingKeyCommand, false, false, amqp.Publishing{
			MessageId: meta.CommandID, Headers: meta.Headers(), Body: []byte(`{"jsonrpc":"2.0","method":"on"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		brokertest.Eventually(t, 5*time.Second, "command not queued", func() bool {
			d, ok, _ := ch.Get(top.CommandsQueue(), false)
			return ok && d.Reject(false) == nil
		})
	}
	brokertest.Eventually(t, 5*time.Second, "not dead-lettered", func() bool { return brokertest.QueueDepth(t, top.DeadQueue()) == n })
	dir := t.TempDir()
	reg := filepath.Join(dir, "clients.yaml")
	y := "clients:\n  - id: app-1\n    token_sha256: " + strings.Repeat("cd", 32) + "\n    devices: [\"lamp-1\"]\n" + brokertest.DevicesYAML("lamp-1", "lamp-2", "lamp-3")
	if err := os.WriteFile(reg, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := filepath.Join(dir, "audit.jsonl")
	t.Setenv("CAFE_AMQP_URL", brokertest.AMQPURLAs(identity.Ops))
	t.Setenv("CAFE_AMQP_PREFIX", top.Prefix)
	t.Setenv("CAFE_CLIENTS_FILE", reg)
	t.Setenv("CAFE_AUDIT_FILE", audit)
	return top, ids, audit
}

func runDead(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := deadCommand()
	var out strings.Builder
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(new(strings.Builder))
	cmd.SetIn(strings.NewReader(stdin))
	err := cmd.Execute()
	return out.String(), err
}

func auditLines(t *testing.T, file string) []deadletter.AuditRecord {
	t.Helper()
	data, _ := os.ReadFile(file)
	var out []deadletter.AuditRecord
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var r deadletter.AuditRecord
		if line != "" && json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func TestDeadListShowJSON(t *testing.T) {
	_, ids, _ := deadEnv(t, 2)
	out, err := runDead(t, "", "list", "--json", "--device", "lamp-2")
	var l deadletter.Letter
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || l.MessageID != ids[1] || l.Method != "on" {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	out, err = runDead(t, "", "show", ids[0])
	for _, want := range []string{ids[0], "rejected", "death history", "app-1 lamp-1 ", `{"jsonrpc":"2.0","method":"on"}`} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("show lacks %q (%v):\n%s", want, err, out)
		}
	}
}

// TestDeadReplayDryRunThenReal: lamp-2 and lamp-3 are no longer app-1's:
// refused with the reason, in the dry run and the real one; lamp-1 is
// replayed; both runs are audited.
func TestDeadReplayDryRunThenReal(t *testing.T) {
	top, ids, audit := deadEnv(t, 3)
	out, err := runDead(t, "", "replay", "--all", "--dry-run")
	if err != nil || !strings.Contains(out, "would replay "+ids[0]) || !strings.Contains(out, "refused  "+ids[1]+": its client may no longer command its device") ||
		!strings.Contains(out, "1 would be replayed, 2 refused") {
		t.Fatalf("dry run (%v):\n%s", err, out)
	}
	settled(t, top, 3)
	out, err = runDead(t, "", "replay", "--client", "app-1", "--rate", "50/s")
	if err != nil || !strings.Contains(out, "replayed "+ids[0]) || !strings.Contains(out, "1 replayed, 2 refused") {
		t.Fatalf("replay (%v):\n%s", err, out)
	}
	brokertest.Eventually(t, 5*time.Second, "queues after the replay", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == 2 && brokertest.QueueDepth(t, top.CommandsQueue()) == 1
	})
	recs := auditLines(t, audit)
	if len(recs) != 2 || !recs[0].DryRun || recs[1].DryRun || recs[1].Done != 1 || recs[1].Refused != 2 ||
		recs[1].Identity != "cafe-ops" || recs[1].Filter != "--client=app-1" || recs[1].OSUser == "" || recs[1].Prefix != top.Prefix {
		t.Fatalf("audit: %+v", recs)
	}
}

func TestDeadPurgeAsksFirst(t *testing.T) {
	top, ids, audit := deadEnv(t, 3)
	out, err := runDead(t, "n\n", "purge", "--device", "lamp-[12]")
	if err == nil || !strings.Contains(err.Error(), "nothing removed") || !strings.Contains(out, "2 dead letters") {
		t.Fatalf("purge answered no: %v\n%s", err, out)
	}
	settled(t, top, 3)
	out, err = runDead(t, "y\n", "purge", "--device", "lamp-[12]")
	if err != nil || !strings.Contains(out, "removed "+ids[0]) || !strings.Contains(out, "removed "+ids[1]) || !strings.Contains(out, "2 removed") {
		t.Fatalf("purge answered yes: %v\n%s", err, out)
	}
	if _, err := runDead(t, "", "purge", "--all", "--yes"); err != nil {
		t.Fatal(err)
	}
	if n := brokertest.QueueDepth(t, top.DeadQueue()); n != 0 {
		t.Fatalf("%d left after purge --all --yes", n)
	}
	recs := auditLines(t, audit)
	if len(recs) != 2 || recs[0].Action != "purge" || recs[0].Done != 2 || recs[1].Done != 1 || recs[1].Filter != "(all)" {
		t.Fatalf("audit: %+v", recs)
	}
}

// settled waits until the dead queue holds n ready letters again: those a
// command looked at come back once its channel is closed, a moment later.
func settled(t *testing.T, top contracts.Topology, n int) {
	t.Helper()
	brokertest.Eventually(t, 5*time.Second, "dead queue not back to its letters", func() bool {
		return brokertest.QueueDepth(t, top.DeadQueue()) == n
	})
}
