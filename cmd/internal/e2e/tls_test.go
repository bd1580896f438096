package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"cafe/contracts/brokertest"
	"cafe/contracts/linktls"
)

// tlsEnv points every link of a process at the brokers' TLS listeners with
// the local CA of `cafe setup`.
func tlsEnv() []string {
	ca := brokertest.CAFile()
	return []string{
		"CAFE_AMQP_URL=amqps://127.0.0.1:5671/", "CAFE_AMQP_CA_FILE=" + ca,
		"CAFE_MQTT_URL=ssl://127.0.0.1:8883", "CAFE_MQTT_CA_FILE=" + ca,
	}
}

// cashierTLSEnv makes the cashier serve HTTPS and hand apps the broker's
// TLS listener.
func cashierTLSEnv() []string {
	return []string{"CAFE_HTTP_CERT_FILE=" + brokertest.TLSFile("cashier.pem"), "CAFE_HTTP_KEY_FILE=" + brokertest.TLSFile("cashier-key.pem"),
		"CAFE_SESSION_MQTT_URL=ssl://127.0.0.1:8883"}
}

// localTLS trusts the local CA (and nothing else): the harness's and the
// test apps' HTTP clients.
func localTLS() *tls.Config {
	pool := x509.NewCertPool()
	if err := linktls.AddCA(pool, brokertest.CAFile()); err != nil {
		panic("the local CA of `cafe setup`: " + err.Error() + " (run `bash deploy/brokers.sh`)")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Every link over TLS: the app's HTTPS request to the cashier and its
// results over ssl://, the services' AMQP over amqps:// and MQTT over
// ssl://, the devices' MQTT over ssl://. A barista that does not trust the
// broker's CA says why, once, and takes no command.
func TestPipelineOverTLS(t *testing.T) {
	p, devices, app := scene(t, setup{baristas: 1, callers: 1, tls: true}, 1)
	if !strings.HasPrefix(p.url(), "https://") {
		t.Fatalf("cashier at %s, want https", p.url())
	}
	app.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","params":["tls"],"id":"tls-1"}`)
	r := app.wait(t, `"tls-1"`, resultWait)
	if r.resp.Error != nil || !strings.Contains(string(r.resp.Result), "tls") {
		t.Fatalf("result %s, want the echo of [\"tls\"]", r.raw)
	}

	app.aside(t, func() { // cafe order logs in as the same app
		t.Run("cafe order trusts the CA it is given", func(t *testing.T) { orderOverTLS(t, p, devices) })
	})
	t.Run("barista with the wrong CA", func(t *testing.T) { wrongCABarista(t, p, devices, app) })
}

// orderOverTLS runs cafe order against p's HTTPS cashier and ssl:// broker
// with each way of giving it the CA, and with none or a malformed one.
func orderOverTLS(t *testing.T, p *pipeline, devices *fleet) {
	order := func(env []string, args ...string) (int, string) {
		base := []string{"order", "--url", p.url(), "--token", p.client.token, "--device", devices.ids[0], "--method", "echo"}
		code, _, out := run(t, 30*time.Second, "cafe", env, append(base, args...)...)
		return code, out
	}
	noLocalCA := []string{"CAFE_CONFIG_DIR=" + t.TempDir()}
	if code, out := order(noLocalCA, "--ca-file", brokertest.CAFile()); code != 0 {
		t.Errorf("--ca-file: exit %d, want 0:\n%s", code, indent(out))
	}
	if code, out := order(append(noLocalCA, "CAFE_CA_FILE="+brokertest.CAFile())); code != 0 {
		t.Errorf("CAFE_CA_FILE: exit %d, want 0:\n%s", code, indent(out))
	}
	if code, out := order(nil); code != 0 { // this machine's CAFE_CONFIG_DIR has the local CA
		t.Errorf("the local CA by default: exit %d, want 0:\n%s", code, indent(out))
	}
	if code, out := order(noLocalCA); code != 4 || !strings.Contains(out, "certificate") {
		t.Errorf("no CA: exit %d, want 4 and a word on the certificate:\n%s", code, indent(out))
	}
	if code, out := order(noLocalCA, "--ca-file", brokertest.TLSFile("cashier-key.pem")); code != 2 || !strings.Contains(out, "CAFE_CA_FILE") {
		t.Errorf("a key as the CA file: exit %d, want 2 and the setting named:\n%s", code, indent(out))
	}
}

// causeRetryWindow is how long wrongCABarista watches the wrong barista
// retry before it counts how often the cause was logged: its links retry
// several times within it.
const causeRetryWindow = 2 * time.Second

// wrongCABarista starts a barista that does not trust RabbitMQ's CA, stops
// the good one, and checks that the wrong one explains itself and takes
// nothing.
func wrongCABarista(t *testing.T, p *pipeline, devices *fleet, app *app) {
	wrong := p.addBarista(t, "CAFE_AMQP_CA_FILE="+brokertest.OtherCA(t))
	brokertest.Eventually(t, readyTimeout, wrong.name+" never logged the cause", func() bool {
		return strings.Contains(wrong.out.String(), "cause=unknown_authority")
	})
	p.baristas[0].stop(t, stopTimeout) // only the wrong one is left
	app.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","id":"tls-2"}`, "Cafe-Timeout", "30s")
	// Nobody can take it: the command waits in the queue, and the broker
	// counts no consumer on it (the wrong barista never got a channel).
	brokertest.Eventually(t, readyTimeout, "the command never reached the commands queue", func() bool {
		return brokertest.QueueDepth(t, p.top.CommandsQueue()) == 1
	})
	if n := brokertest.Consumers(t, p.top.CommandsQueue()); n != 0 {
		t.Errorf("the commands queue has %d consumers with only the wrong-CA barista left, want none", n)
	}
	if n := brokertest.QueueDepth(t, p.top.CommandsQueue()); n != 1 {
		t.Errorf("commands queue holds %d, want the 1 command nobody could take", n)
	}
	if got := app.withID(`"tls-2"`); len(got) != 0 {
		t.Errorf("a result came without a barista that trusts the broker: %s", got[0].raw)
	}
	// The barista logs at info, so its repeated failures (debug records)
	// cannot be counted: a window of its retries is the evidence that it
	// logs the cause once.
	time.Sleep(causeRetryWindow)
	out := wrong.out.String()
	links := causeLinks(out, "unknown_authority")
	for link, n := range links {
		if n != 1 {
			t.Errorf("link %s logged the cause %d times, want once:\n%s", link, n, indent(out))
		}
	}
	if len(links) == 0 {
		t.Errorf("no link logged the cause:\n%s", indent(out))
	}
	if !strings.Contains(out, "CAFE_AMQP_CA_FILE") {
		t.Errorf("the log gives no hint naming CAFE_AMQP_CA_FILE:\n%s", indent(out))
	}
	if code := getURL(wrong.base() + "/readyz"); code == http.StatusOK {
		t.Error("the barista that cannot reach RabbitMQ says it is ready")
	}
}

// causeLinks counts, per link, the log lines of a text log that give cause.
func causeLinks(log, cause string) map[string]int {
	links := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "cause="+cause) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if name, ok := strings.CutPrefix(f, "link="); ok {
				links[name]++
			}
		}
	}
	return links
}
