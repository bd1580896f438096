package devicesim_test

import (
	"context"
	"testing"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/devicesim/simtest"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/linktls"
)

// Over ssl:// with the local CA a device connects and answers as over TCP.
func TestOverTLS(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{MQTTURL: brokertest.MQTTTLSURLAs(identity.Admin), MQTTTLS: linktls.Files{CA: brokertest.CAFile()}})
	if got := simtest.NewBarista(t).Call(f.ids[0], `{"jsonrpc":"2.0","id":1,"method":"echo"}`); got != `{"jsonrpc":"2.0","id":1,"result":null}` {
		t.Fatalf("over TLS, echo gave %s", got)
	}
}

// With a CA that did not sign the broker's certificate a device never
// comes online, and the cause is logged once, naming the setting to fix.
func TestWrongCAIsExplainedOnce(t *testing.T) {
	t.Parallel()
	var logs brokertest.Logs
	f, err := devicesim.New(devicesim.Config{
		MQTTURL: brokertest.MQTTTLSURLAs(identity.Admin), MQTTTLS: linktls.Files{CA: brokertest.OtherCA(t)},
		Count: 2, Pattern: brokertest.ID(t, "d") + "-%d", MaxBackoff: 200 * time.Millisecond,
	}, logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	brokertest.LoggedOnce(t, &logs, "unknown_authority", "CAFE_MQTT_CA_FILE")
	if got := f.Stats().Online; got != 0 {
		t.Errorf("%d devices online with the wrong CA", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
