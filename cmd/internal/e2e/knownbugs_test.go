package e2e

import (
	"flag"
	"fmt"
	"net/url"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// knownBugs runs the tests of bugs that are reported but not fixed yet;
// they fail until the fix lands, then lose their skip.
var knownBugs = flag.Bool("known-bugs", false, "also run the tests of reported, unfixed bugs (they fail until fixed)")

// A barista takes commands from the queue before its MQTT link is up (its
// /readyz says 503 meanwhile), so commands it cannot send wait out their
// deadline in it instead of going to a barista that can, and it checks
// presence before it has seen any.
func TestBaristaWaitsForMQTTBeforeTakingCommands(t *testing.T) {
	if !*knownBugs {
		t.Skip("known bug: a barista consumes commands while its MQTT link is down; run with -known-bugs")
	}
	t.Parallel()
	p := newPipeline(t, setup{baristas: 1, callers: 1})
	devices := p.startDevices(t, 1)
	a := pipelineApp(p)
	mqttURL, err := url.Parse(brokertest.MQTTURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := brokertest.NewProxy(t, mqttURL.Host)
	proxy.Cut()
	mqttURL.Host = proxy.Addr()
	cutOff := startService(t, "barista without MQTT", "barista",
		append([]string{"CAFE_MQTT_URL=" + mqttURL.String(), "CAFE_BARISTA_GRACE=1s"}, p.env...))

	t.Run("commands go to the barista that can send them", func(t *testing.T) {
		p.waitConsumers(t, p.top.CommandsQueue(), 2) // the cut-off barista consumes too
		for i := range 10 {
			a.submit(t, devices.ids[0], fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","id":%d}`, i), "Cafe-Timeout", "2s")
		}
		for i := range 10 {
			if got := a.wait(t, fmt.Sprint(i), resultWait); got.resp.Error != nil {
				t.Errorf("command %d: %s", i, got.raw)
			}
		}
	})

	t.Run("presence is known before a command is checked", func(t *testing.T) {
		p.baristas[0].stop(t, stopTimeout) // only the cut-off barista is left
		dev := p.devices + "-gone"
		clearPresenceAtEnd(t, dev)
		publish(t, connect(t, "presence", nil), contracts.PresenceTopic(dev), []byte(`{"online":false}`), true)
		a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"gone"}`, "Cafe-Timeout", "3s")
		brokertest.Eventually(t, resultWait, "the cut-off barista never took the command", func() bool {
			return cutOff.metric(t, "cafe_barista_commands_in_flight") == 1
		})
		proxy.Restore()
		wantError(t, a.wait(t, `"gone"`, resultWait), contracts.CodeDeviceOffline)
	})
}
