package devicesim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/devicesim/simtest"
	"cafe/contracts/brokertest"
)

// A device whose pings stopped would be dropped by Mosquitto after one and
// a half keep-alive periods, and its last will published; the fleet's
// pinger keeps an idle device connected well past that.
func TestIdleDeviceStaysConnected(t *testing.T) {
	t.Parallel()
	f := runFleet(t, devicesim.Config{KeepAlive: devicesim.MinKeepAlive})
	d := f.ids[0]
	watch := simtest.WatchPresence(t, brokertest.MQTTURL(), d)
	simtest.PresenceIs(t, watch, d, true)
	time.Sleep(3 * devicesim.MinKeepAlive) // twice what Mosquitto allows without a packet
	if got := watch.On("devices/" + d + "/presence"); len(got) != 1 {
		t.Fatalf("presence changed while idle: %d messages, the last %s", len(got), got[len(got)-1].Payload)
	}
	if got := simtest.NewBarista(t).Call(d, `{"jsonrpc":"2.0","id":1,"method":"echo"}`); got != `{"jsonrpc":"2.0","id":1,"result":null}` {
		t.Fatalf("after idling, echo gave %s", got)
	}
}

// A device the broker refuses keeps trying and never counts as online.
func TestRefusedDeviceIsNotOnline(t *testing.T) {
	t.Parallel()
	f, err := devicesim.New(devicesim.Config{
		MQTTURL: brokertest.MQTTURL(), Count: 1, Pattern: brokertest.ID(t, "d") + "-%d",
		MaxBackoff: 100 * time.Millisecond,
		Secret:     func(string) string { return "not its secret" }, // and no login of that name
	}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	defer wcancel()
	if err := f.WaitOnline(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitOnline with a refused login: %v, want the context's deadline", err)
	}
	if got := f.Stats().Online; got != 0 {
		t.Errorf("%d devices online with a refused login", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
