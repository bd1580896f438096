package e2e

import (
	"fmt"
	"net/url"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// A barista takes no commands while its MQTT link is down (it would only
// let them wait out their deadlines), and it reads the devices' retained
// presence before it checks a command against it.
func TestBaristaWaitsForMQTTBeforeTakingCommands(t *testing.T) {
	p, devices, a := scene(t, setup{baristas: 1, callers: 1}, 1)
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
		brokertest.Eventually(t, resultWait, "the cut-off barista never started", func() bool {
			res, err := probe.Get("http://" + cutOff.addr + "/healthz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == 200
		})
		p.waitConsumers(t, p.top.CommandsQueue(), 1) // only the healthy barista consumes
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
		a.submit(t, dev, `{"jsonrpc":"2.0","method":"echo","id":"gone"}`, "Cafe-Timeout", "30s")
		brokertest.Eventually(t, resultWait, "the command is not waiting in the queue", func() bool {
			return brokertest.QueueDepth(t, p.top.CommandsQueue()) == 1
		})
		if n := cutOff.metric(t, "cafe_barista_commands_in_flight"); n != 0 {
			t.Fatalf("the cut-off barista holds %v commands", n)
		}
		proxy.Restore()
		wantError(t, a.wait(t, `"gone"`, resultWait), contracts.CodeDeviceOffline)
	})
}
