// Package brokertest gives tests the real brokers on this machine, each test
// isolated: its own AMQP name prefix (removed afterwards), its own MQTT
// client, device and app ids, and a TCP proxy that can cut a service off from
// a broker without touching the broker itself.
//
// Tests that need a broker fail, not skip, when it is not there: CI starts
// the brokers (deploy/brokers.sh), and a test that silently skipped would
// prove nothing. The one exception is the three-node RabbitMQ cluster
// (ClusterOf): CI does not start it, so the tests that kill its nodes sit
// behind build tags and skip, naming `task cluster:up`, when it is down;
// `task chaos:cluster` starts it and runs them.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// AMQPURL is the RabbitMQ the tests use ($CAFE_TEST_AMQP_URL, which may
// list a cluster's nodes, comma-separated, or the local default), logged in
// as cafe-admin: the tests' own view of the broker, for
// setting up, inspecting and cleaning up. Links that play a role use
// AMQPURLAs.
func AMQPURL() string { return AMQPURLAs(identity.Admin) }

// MQTTURL is the Mosquitto the tests use ($CAFE_TEST_MQTT_URL or the local
// default), logged in as cafe-admin (every topic; client id free).
func MQTTURL() string { return MQTTURLAs(identity.Admin) }

// AMQPURLAs is the tests' RabbitMQ, logged in as service s.
func AMQPURLAs(s identity.Service) string {
	return amqplink.MapURLs(AMQPBase(), func(u string) string { return as(u, string(s), Key().ServicePassword(s)) })
}

// MQTTURLAs is the tests' Mosquitto, logged in as service s.
func MQTTURLAs(s identity.Service) string {
	return as(envOr("CAFE_TEST_MQTT_URL", "tcp://127.0.0.1:1883"), string(s), Key().ServicePassword(s))
}

// MQTTURLOf is the tests' Mosquitto with user name user and password (a
// device's or an app's login, see Device and App).
func MQTTURLOf(user, password string) string {
	return as(envOr("CAFE_TEST_MQTT_URL", "tcp://127.0.0.1:1883"), user, password)
}

// MQTTBase is the tests' Mosquitto without credentials: Mosquitto refuses
// it as it is; cafe's services fill in their role's login from this
// machine's auth key (cli.WithRole), as on the one-machine set-up.
func MQTTBase() string { return envOr("CAFE_TEST_MQTT_URL", "tcp://127.0.0.1:1883") }

// AMQPBase is the tests' RabbitMQ without credentials (see MQTTBase).
func AMQPBase() string { return envOr("CAFE_TEST_AMQP_URL", "amqp://127.0.0.1:5672/") }

func as(raw, user, password string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic("test broker URL " + raw + ": " + err.Error())
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

var key = sync.OnceValues(func() (identity.Key, error) { return identity.LoadKey(KeyFile()) })

// KeyFile is where this machine's auth key is (processes a test starts
// with a folder of their own, CAFE_CONFIG_DIR, are given it as
// CAFE_AUTH_KEY_FILE).
func KeyFile() string {
	dir, err := local.Default()
	if err != nil {
		panic("no installation folder: " + err.Error())
	}
	return dir.KeyFile()
}

// Key is this machine's auth key, which `bash deploy/brokers.sh` made: the
// services' passwords (and cafe-admin's) are derived from it. Tests cannot
// run without it.
func Key() identity.Key {
	k, err := key()
	if err != nil {
		panic("the brokers are not set up for cafe on this machine (" + err.Error() + "): run `bash deploy/brokers.sh`")
	}
	return k
}

// ID returns a unique identifier valid as a device, client or prefix name:
// kind, a slug of the test's name, and random hex.
func ID(t testing.TB, kind string) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	slug := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '-'
	}, t.Name())
	if len(slug) > 24 {
		slug = slug[len(slug)-24:]
	}
	return kind + "-" + strings.Trim(slug, "-") + "-" + hex.EncodeToString(b[:])
}

// Topology returns a topology with a prefix of the test's own, declared
// (as cafe-admin: cafe's roles may only check that it exists); its queues
// and exchanges are deleted when the test ends.
func Topology(t testing.TB) contracts.Topology { return TopologyWith(t, nil) }

// TopologyWith is Topology with change applied before it is declared (a
// lower delivery limit, a queue length).
func TopologyWith(t testing.TB, change func(*contracts.Topology)) contracts.Topology {
	t.Helper()
	top := contracts.DefaultTopology()
	top.Prefix = ID(t, "t")
	if change != nil {
		change(&top)
	}
	t.Cleanup(func() { DeleteTopology(t, top) })
	Declare(t, top)
	return top
}

// Declare declares top as cafe-admin; after a change of its limits, call
// DeleteTopology first (RabbitMQ refuses other arguments for a queue).
func Declare(t testing.TB, top contracts.Topology) {
	t.Helper()
	conn := Dial(t)
	defer conn.Close()
	if err := amqplink.Ensure(conn, top, false); err != nil {
		t.Fatalf("declare the topology %s: %v", top.Prefix, err)
	}
}

// Dial connects to the test RabbitMQ or fails the test saying how to start it.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	var conn *amqp.Connection
	var err error
	for range 20 { // a broker that just restarted may take a moment
		if conn, err = amqplink.Dial(amqplink.Config{URL: AMQPURL()}); err == nil {
			return conn
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("RabbitMQ is not reachable at %s (%v): start the brokers with `bash deploy/brokers.sh` or set CAFE_TEST_AMQP_URL", contracts.RedactURL(AMQPURL()), err)
	return nil
}

// DeleteTopology removes every queue and exchange of top.
func DeleteTopology(t testing.TB, top contracts.Topology) {
	t.Helper()
	conn := Dial(t)
	defer conn.Close()
	if err := amqplink.Delete(conn, top); err != nil {
		t.Errorf("clean-up of %s: %v", top.Prefix, err)
	}
}

// Channel is a channel on a connection of its own, as cafe-admin, both
// closed when the test ends.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn := Dial(t)
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Close() })
	return ch
}

// Purge removes every ready message of queue (as if a consumer took them).
func Purge(t testing.TB, queue string) {
	t.Helper()
	if _, err := Channel(t).QueuePurge(queue, false); err != nil {
		t.Fatalf("purge queue %s: %v", queue, err)
	}
}

// QueueDepth returns the number of ready messages in queue.
func QueueDepth(t testing.TB, queue string) int {
	t.Helper()
	return inspect(t, queue).Messages
}

// Consumers returns the number of consumers the broker counts on queue.
// When a consumer's channel closes, the broker drops it from that count in
// the same step as it requeues what the consumer held unacknowledged (a
// cancelled consumer still holding messages stays counted until then), so
// 0 after the channel closed means those messages are back in the queue.
func Consumers(t testing.TB, queue string) int {
	t.Helper()
	return inspect(t, queue).Consumers
}

// inspect is queue's state as a passive declare tells it.
func inspect(t testing.TB, queue string) amqp.Queue {
	t.Helper()
	conn := Dial(t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect queue %s: %v", queue, err)
	}
	return q
}

// Eventually polls cond every 10ms until it holds or timeout passes, then
// fails the test with msg. It stands for "wait for a condition", never for a
// fixed sleep.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
