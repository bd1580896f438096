// Package brokertest gives tests the real brokers on this machine, each test
// isolated: its own AMQP name prefix (removed afterwards), its own MQTT
// client, device and app ids, and a TCP proxy that can cut a service off from
// a broker without touching the broker itself.
//
// Tests that need a broker fail, not skip, when it is not there: CI starts
// the brokers (deploy/brokers.sh), and a test that silently skipped would
// prove nothing.
package brokertest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/contracts"
	"cafe/contracts/amqplink"
)

// AMQPURL is the RabbitMQ the tests use: $CAFE_TEST_AMQP_URL or the local default.
func AMQPURL() string {
	if u := os.Getenv("CAFE_TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// MQTTURL is the Mosquitto the tests use: $CAFE_TEST_MQTT_URL or the local default.
func MQTTURL() string {
	if u := os.Getenv("CAFE_TEST_MQTT_URL"); u != "" {
		return u
	}
	return "tcp://127.0.0.1:1883"
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

// Topology returns a topology with a prefix of the test's own; its queues and
// exchanges are deleted when the test ends.
func Topology(t testing.TB) contracts.Topology {
	t.Helper()
	top := contracts.DefaultTopology()
	top.Prefix = ID(t, "t")
	t.Cleanup(func() { DeleteTopology(t, top) })
	return top
}

// Dial connects to the test RabbitMQ or fails the test saying how to start it.
func Dial(t testing.TB) *amqp.Connection {
	t.Helper()
	var conn *amqp.Connection
	var err error
	for range 20 { // a broker that just restarted may take a moment
		if conn, err = amqp.Dial(AMQPURL()); err == nil {
			return conn
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("RabbitMQ is not reachable at %s (%v): start the brokers with `bash deploy/brokers.sh` or set CAFE_TEST_AMQP_URL", AMQPURL(), err)
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

// QueueDepth returns the number of ready messages in queue.
func QueueDepth(t testing.TB, queue string) int {
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
	return q.Messages
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
