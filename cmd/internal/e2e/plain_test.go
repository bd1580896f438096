package e2e

import (
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// TestPlainImplementationKeepsTheContract: cmd/plaincafe, which `cafe
// bench --against` measures cafe against, takes a command over the same
// HTTP API and delivers its device's reply to the app, so a comparison
// compares two implementations of one contract.
func TestPlainImplementationKeepsTheContract(t *testing.T) {
	t.Parallel()
	p := &pipeline{t: t, devices: brokertest.ID(t, "dev")}
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "plain")
	// Its two queues have the names of a topology's commands and results
	// queues; the rest of the topology is missing, which the clean-up allows.
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	p.client = newClient(t)
	p.registry = writeGrants(t, p.devices, grant{p.client, []string{p.devices + "-*"}})
	p.cashier = startService(t, "plaincafe", "plaincafe", []string{"CAFE_CLIENTS_FILE=" + p.registry}, "--prefix", top.Prefix)
	p.cashier.waitReady(t)
	devices := p.startDevices(t, 1)
	a := pipelineApp(p)
	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","params":[1,"x"],"id":"p-1"}`, "Cafe-Timeout", "10s")
	if got, want := string(a.wait(t, `"p-1"`, resultWait).raw), `{"jsonrpc":"2.0","id":"p-1","result":[1,"x"]}`; got != want {
		t.Fatalf("result %s, want %s", got, want)
	}
	if status, _ := a.post(t, devices.ids[0], `{"jsonrpc":"1.0","method":"echo","id":2}`); status != 400 {
		t.Errorf("an invalid envelope got %d, want 400 as from cafe", status)
	}
}
