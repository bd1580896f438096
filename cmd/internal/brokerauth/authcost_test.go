package brokerauth_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/cmd/internal/brokerauth"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/registry"
)

// What authentication costs on MQTT: the same round trips on the shared
// broker (logins checked by the dynamic security plugin, topics by the
// ACL file) and on a scratch Mosquitto with the same settings open to
// anyone. A barista-like publisher sends QoS 1 commands to a device's
// commands topic, the device is subscribed to its own filter.
//
//	go test -run '^$' -bench MQTTAuthCost -benchtime 1x ./cmd/internal/brokerauth/

// Sizes of one measurement.
const (
	costConnects = 50   // connection attempts timed one after another
	costLone     = 500  // lone round trips: publish, wait for the delivery
	costBurst    = 5000 // messages published without waiting, for throughput
)

// cafeConf is the broker configuration whose settings the scratch broker
// copies.
const cafeConf = "../../../deploy/mosquitto/cafe.conf"

// costLink is one broker to measure: how to connect as the publisher, as
// the subscribing device, and as a device for the connection timing.
type costLink struct {
	pub, sub, connect string // broker URLs with their logins
	device            string // the subscriber's client id (and user name)
}

// BenchmarkMQTTAuthCost measures three brokers: the shared one (busy
// with whatever else runs on this machine), and two scratch ones that
// differ only in access control: cafe's logins and ACL file, or none.
func BenchmarkMQTTAuthCost(b *testing.B) {
	b.Run("shared-authenticated", func(b *testing.B) {
		d, other := brokertest.ID(b, "d"), brokertest.ID(b, "d")
		pw, otherPW := brokertest.Device(b, d), brokertest.Device(b, other)
		measureCost(b, costLink{pub: brokertest.MQTTURLAs(identity.Barista), sub: brokertest.MQTTURLOf(d, pw), connect: brokertest.MQTTURLOf(other, otherPW), device: d})
	})
	b.Run("shared-authenticated-tls", func(b *testing.B) {
		d, other := brokertest.ID(b, "d"), brokertest.ID(b, "d")
		pw, otherPW := brokertest.Device(b, d), brokertest.Device(b, other)
		measureCost(b, costLink{pub: tlsURL(brokertest.MQTTURLAs(identity.Barista)), sub: tlsURL(brokertest.MQTTURLOf(d, pw)),
			connect: tlsURL(brokertest.MQTTURLOf(other, otherPW)), device: d})
	})
	b.Run("scratch-authenticated", func(b *testing.B) {
		d, other := brokertest.ID(b, "d"), brokertest.ID(b, "d")
		base := brokertest.ScratchMosquitto(b, cafeConf, scratchAccess(b, d, other))
		if brokertest.ConnectOnce(base, brokertest.ID(b, "anon")) == nil {
			b.Fatal("the scratch broker with cafe's access control let an anonymous client in")
		}
		key := brokertest.Key()
		measureCost(b, costLink{pub: withLogin(base, string(identity.Barista), key.ServicePassword(identity.Barista)),
			sub: withLogin(base, d, key.DeviceSecret(d, 1)), connect: withLogin(base, other, key.DeviceSecret(other, 1)), device: d})
	})
	b.Run("scratch-anonymous", func(b *testing.B) {
		base := brokertest.AnonymousMosquitto(b, cafeConf)
		measureCost(b, costLink{pub: base, sub: base, connect: base, device: brokertest.ID(b, "d")})
	})
}

// scratchAccess writes, for a scratch broker, the plugin's file of a
// registry with devices and a copy of cafe's ACL file, and returns the
// access settings that use them (as deploy/mosquitto/cafe.conf does).
func scratchAccess(b *testing.B, devices ...string) string {
	b.Helper()
	dir := brokertest.ScratchDir(b)
	reg, err := registry.Parse([]byte(brokertest.DevicesYAML(devices...)))
	if err != nil {
		b.Fatal(err)
	}
	doc, err := brokerauth.Render(reg, filepath.Join(dir, "clients.yaml"), brokertest.Key())
	if err != nil {
		b.Fatal(err)
	}
	acl, err := os.ReadFile("../../../deploy/mosquitto/cafe.acl")
	if err != nil {
		b.Fatal(err)
	}
	dynsec, aclFile := filepath.Join(dir, "dynsec.json"), filepath.Join(dir, "cafe.acl")
	for name, content := range map[string][]byte{dynsec: doc, aclFile: acl} {
		if err := os.WriteFile(name, content, 0o600); err != nil {
			b.Fatal(err)
		}
		brokertest.Own(b, name)
	}
	return "allow_anonymous false\nplugin /usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so\nplugin_opt_config_file " + dynsec + "\nacl_file " + aclFile + "\n"
}

// tlsURL is raw (a login on the shared broker's plain listener) on its
// TLS listener (brokertest.MQTTTLSBase).
func tlsURL(raw string) string {
	u, _ := url.Parse(raw)
	t, _ := url.Parse(brokertest.MQTTTLSBase())
	u.Scheme, u.Host = t.Scheme, t.Host
	return u.String()
}

// withLogin is base with user's login.
func withLogin(base, user, password string) string {
	u, _ := url.Parse(base)
	u.User = url.UserPassword(user, password)
	return u.String()
}

func measureCost(b *testing.B, l costLink) {
	for range b.N {
		connect := timeConnects(b, l)
		sub, _ := brokertest.Hold(b, l.sub, l.device)
		pub, _ := brokertest.Hold(b, l.pub, brokertest.ID(b, "cafe-barista"))
		got := make(chan struct{}, costBurst)
		if tok := sub.Subscribe(contracts.CommandsFilter(l.device), 1, func(paho.Client, paho.Message) { got <- struct{}{} }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatalf("subscribe: %v", tok.Error())
		}
		topic := contracts.CommandTopic(l.device, "bench", "k")
		lone := loneTrips(b, pub, topic, got)
		rate := burst(b, pub, topic, got)
		b.ReportMetric(ms(percentile(connect, 50)), "connect-p50-ms")
		b.ReportMetric(ms(percentile(lone, 50)), "qos1-p50-ms")
		b.ReportMetric(ms(percentile(lone, 99)), "qos1-p99-ms")
		b.ReportMetric(rate, "msgs/s")
		sub.Disconnect(0)
		pub.Disconnect(0)
	}
}

// timeConnects times costConnects connections (TCP, CONNECT, CONNACK) as
// l.connect's login, each closed again.
func timeConnects(b *testing.B, l costLink) []time.Duration {
	b.Helper()
	u, _ := url.Parse(l.connect)
	id := brokertest.ID(b, "c")
	if u.User != nil {
		id = u.User.Username() // a device's login takes only its own client id
	}
	out := make([]time.Duration, 0, costConnects)
	for range costConnects {
		began := time.Now()
		if err := brokertest.ConnectOnce(l.connect, id); err != nil {
			b.Fatalf("connect: %v", err)
		}
		out = append(out, time.Since(began))
	}
	return out
}

// loneTrips publishes costLone messages one at a time, each once the
// previous one was delivered, and returns each round trip.
func loneTrips(b *testing.B, pub paho.Client, topic string, got <-chan struct{}) []time.Duration {
	b.Helper()
	out := make([]time.Duration, 0, costLone)
	payload := []byte(`{"jsonrpc":"2.0","method":"echo","id":1}`)
	for range costLone {
		began := time.Now()
		pub.Publish(topic, 1, false, payload)
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			b.Fatal("a message was not delivered within 5s")
		}
		out = append(out, time.Since(began))
	}
	return out
}

// burst publishes costBurst messages without waiting and returns how many
// per second were delivered.
func burst(b *testing.B, pub paho.Client, topic string, got <-chan struct{}) float64 {
	b.Helper()
	began := time.Now()
	for i := range costBurst {
		pub.Publish(topic, 1, false, []byte(`{"jsonrpc":"2.0","method":"echo","id":`+strconv.Itoa(i)+`}`))
	}
	for range costBurst {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatal("the burst was not delivered within 10s")
		}
	}
	return costBurst / time.Since(began).Seconds()
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
