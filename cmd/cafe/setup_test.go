package main

import (
	"io"
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
