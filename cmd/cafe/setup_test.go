package main

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestSetupRefusesABadRabbitMQNodeName(t *testing.T) {
	for _, name := range []string{"-n", "--help", "cafe", "cafe@", "@localhost", "a@b c", "a@b;rm -rf /", "a@b\n", "a/b@c", strings.Repeat("a", 300) + "@b"} {
		err := (&setupSettings{rabbitmq: true, rabbitmqNode: name}).run(io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--rabbitmq-node") {
			t.Errorf("node %.40q: got %v, want an error naming --rabbitmq-node", name, err)
		}
	}
}

func TestAppliedMarkerIsOnePerNode(t *testing.T) {
	for node, want := range map[string]string{"": "rabbitmq.applied", "cafe-1@localhost": "rabbitmq-cafe-1@localhost.applied"} {
		if got := appliedMarker(node); got != want {
			t.Errorf("appliedMarker(%q) = %q, want %q", node, got, want)
		}
	}
}

// A derived password may start with "-": rabbitmqctl must still take it as
// the password, not as options (it refused one on a fresh machine).
func TestRabbitMQUserWithAPasswordThatLooksLikeAnOption(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatalf("rabbitmqctl is not installed here (%v): run `bash deploy/brokers.sh`, which installs it with RabbitMQ", err)
	}
	node := rabbitmqNode("")
	name, pw := "cafe-test-dash-"+strconv.Itoa(os.Getpid()), "-WwaRy1xLr6JHoQ2y"
	if _, err := node.run(userArgs("add_user", name, pw)...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = node.run("delete_user", name) })
	if _, err := node.run(userArgs("authenticate_user", name, pw)...); err != nil {
		t.Fatalf("the password given was not the one set: %v", err)
	}
	if _, err := node.run(userArgs("change_password", name, "--"+pw)...); err != nil {
		t.Fatal(err)
	}
	if _, err := node.run(userArgs("authenticate_user", name, "--"+pw)...); err != nil {
		t.Fatalf("the changed password was not the one set: %v", err)
	}
}
