package brokerauth_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"cafe/cmd/internal/brokerauth"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/mqttlink"
	"cafe/contracts/registry"
)

// fixture is a registry file of the test's own, with a reconciler of it
// on the real broker.
type fixture struct {
	t    testing.TB
	file string
	key  identity.Key
	r    *brokerauth.Reconciler
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, file: filepath.Join(t.TempDir(), "clients.yaml"), key: brokertest.Key()}
	if err := os.WriteFile(f.file, []byte("clients: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, closeLink, err := brokerauth.Open(ctx, mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "broker-auth")}, f.file, f.key, brokertest.Quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeLink)
	f.r = r
	// A first round with the empty registry makes any service login the
	// broker lacks (a service added since the broker was set up, such as
	// cafe-bridge), so that the test's rounds count only its own logins.
	if _, err := r.Round(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

// devices registers ids (their logins deleted when the test ends) and
// returns their secrets.
func (f *fixture) devices(ids ...string) map[string]string {
	f.t.Helper()
	brokertest.DeleteLoginsAtEnd(f.t, ids...)
	secrets, err := registry.EnsureDevices(f.file, f.key, ids)
	if err != nil {
		f.t.Fatal(err)
	}
	return secrets
}

// app registers an app that may command every device, and returns the
// MQTT password POST /v1/sessions would give it.
func (f *fixture) app(id string) string {
	f.t.Helper()
	brokertest.DeleteLoginsAtEnd(f.t, id)
	token := identity.SHA256("token-of-" + id)
	err := registry.Edit(f.file, func(d *registry.Doc) error { return d.AddClient(id, token, []string{"*"}, 0, 0) })
	if err != nil {
		f.t.Fatal(err)
	}
	return f.key.SessionKey().AppPassword(id, token)
}

func (f *fixture) round(want brokerauth.Changes) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := f.r.Round(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	if got != want {
		f.t.Fatalf("reconciled: %s, want %s", got, want)
	}
}

func accepted(t testing.TB, user, password, clientID string) {
	t.Helper()
	if err := brokertest.ConnectOnce(brokertest.MQTTURLOf(user, password), clientID); err != nil {
		t.Fatalf("%s (client id %s) refused: %v", user, clientID, err)
	}
}

func refused(t testing.TB, why, user, password, clientID string) {
	t.Helper()
	if err := brokertest.ConnectOnce(brokertest.MQTTURLOf(user, password), clientID); err == nil {
		t.Fatalf("%s: the broker let %s in (client id %s)", why, user, clientID)
	}
}

func TestTheRegistrysDevicesAndAppsCanLogIn(t *testing.T) {
	f := newFixture(t)
	d1, d2, app := brokertest.ID(t, "d"), brokertest.ID(t, "d"), brokertest.ID(t, "app")
	secrets := f.devices(d1, d2)
	appPassword := f.app(app)
	f.round(brokerauth.Changes{Created: 3})
	f.round(brokerauth.Changes{}) // nothing left to do

	accepted(t, d1, secrets[d1], d1)
	accepted(t, d2, secrets[d2], d2)
	accepted(t, app, appPassword, app)
	refused(t, "another device's secret", d1, secrets[d2], d1)
	refused(t, "a client id other than its own", d1, secrets[d1], d1+"-2")
	refused(t, "another device's client id", d1, secrets[d1], d2)
	refused(t, "a service's client id", d1, secrets[d1], "cafe-barista-b-12345678")
	refused(t, "an unregistered device", brokertest.ID(t, "d"), secrets[d1], d1)
}

func TestRotatedAndRemovedDevicesAreCutOff(t *testing.T) {
	f := newFixture(t)
	rotated, removed := brokertest.ID(t, "d"), brokertest.ID(t, "d")
	secrets := f.devices(rotated, removed)
	f.round(brokerauth.Changes{Created: 2})
	_, rotatedLost := brokertest.Hold(t, brokertest.MQTTURLOf(rotated, secrets[rotated]), rotated)
	c, removedLost := brokertest.Hold(t, brokertest.MQTTURLOf(removed, secrets[removed]), removed)
	if tok := c.Publish(contracts.PresenceTopic(removed), 1, true, `{"online":true}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("presence: %v", tok.Error())
	}

	fresh := f.key.DeviceSecret(rotated, 2)
	err := registry.Edit(f.file, func(d *registry.Doc) error { return d.SetDevice(rotated, identity.SHA256(fresh), 2) })
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.RemoveDevices(f.file, []string{removed}); err != nil {
		t.Fatal(err)
	}
	f.round(brokerauth.Changes{Updated: 1, Deleted: 1})

	for name, lost := range map[string]<-chan struct{}{"rotated": rotatedLost, "removed": removedLost} {
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s device is still connected 5s after the reconciliation", name)
		}
	}
	refused(t, "the secret before rotation", rotated, secrets[rotated], rotated)
	accepted(t, rotated, fresh, rotated)
	refused(t, "a removed device", removed, secrets[removed], removed)
	if got := retained(t, contracts.PresenceTopic(removed)); got != "" {
		t.Fatalf("a removed device's presence still says %s", got)
	}
}

// retained is the retained message on topic ("" for none), read as
// cafe-admin.
func retained(t testing.TB, topic string) string {
	t.Helper()
	c, _ := brokertest.Hold(t, brokertest.MQTTURL(), brokertest.ID(t, "reader"))
	got := make(chan string, 1)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe to %s: %v", topic, tok.Error())
	}
	select { // a retained message comes right after the SUBACK
	case p := <-got:
		return p
	case <-time.After(500 * time.Millisecond):
		return ""
	}
}

func TestAnotherRegistrysLoginsAreLeftAlone(t *testing.T) {
	mine, theirs := newFixture(t), newFixture(t)
	d := brokertest.ID(t, "d")
	secrets := theirs.devices(d)
	theirs.round(brokerauth.Changes{Created: 1})
	mine.round(brokerauth.Changes{}) // d is not in mine: not deleted
	accepted(t, d, secrets[d], d)
}

// watch runs the reconciler on f's file until the test ends.
func (f *fixture) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Error(err)
		}
	})
}

// cutOff registers device d, waits until it can log in, connects it,
// removes it from the registry file, and returns how long the broker took
// to drop the connection (failing after 10s).
func (f *fixture) cutOff(d string) time.Duration {
	f.t.Helper()
	secrets := f.devices(d)
	brokertest.Eventually(f.t, 10*time.Second, "the added device cannot log in", func() bool {
		return brokertest.ConnectOnce(brokertest.MQTTURLOf(d, secrets[d]), d) == nil
	})
	_, lost := brokertest.Hold(f.t, brokertest.MQTTURLOf(d, secrets[d]), d)
	began := time.Now()
	if err := registry.RemoveDevices(f.file, []string{d}); err != nil {
		f.t.Fatal(err)
	}
	select {
	case <-lost:
		return time.Since(began)
	case <-time.After(10 * time.Second):
		f.t.Fatal("the removed device is still connected after 10s")
		return 0
	}
}

func TestTheFileIsWatched(t *testing.T) {
	f := newFixture(t)
	f.watch()
	t.Logf("removed from the registry file → disconnected: %v", f.cutOff(brokertest.ID(t, "d")).Round(time.Millisecond))
}

// BenchmarkRemovalCutOff measures the time from a device's removal from
// the registry file (what `cafe devices remove` does) to the broker
// dropping its connection, with the reconciler watching the file.
func BenchmarkRemovalCutOff(b *testing.B) {
	f := newFixture(b)
	f.watch()
	var total time.Duration
	for i := range b.N {
		total += f.cutOff(brokertest.ID(b, "d") + "-" + strconv.Itoa(i))
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/cut-off")
}
