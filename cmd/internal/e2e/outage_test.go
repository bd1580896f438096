package e2e

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// While RabbitMQ is unreachable the cashier fails /readyz and answers 503
// with Retry-After, queueing nothing; once it is back, commands are taken
// again. The cashier reaches RabbitMQ through a proxy the test cuts.
func TestCashierRefusesWhileRabbitMQIsAway(t *testing.T) {
	t.Parallel()
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "e2e")
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	brokertest.Declare(t, top)
	amqpURL, err := url.Parse(brokertest.AMQPBase()) // the cashier logs in as itself
	if err != nil {
		t.Fatal(err)
	}
	proxy := brokertest.NewProxy(t, amqpURL.Host)
	amqpURL.Host = proxy.Addr()
	c := newClient(t)
	devices := brokertest.ID(t, "dev")
	cashier := startService(t, "cashier", "cashier", []string{
		"CAFE_CLIENTS_FILE=" + writeRegistry(t, c, devices, devices+"-*"),
		"CAFE_AMQP_PREFIX=" + top.Prefix,
		"CAFE_AMQP_URL=" + amqpURL.String(),
	})
	cashier.waitReady(t)
	a := newApp(t, "http://"+cashier.addr, c)

	proxy.Cut()
	brokertest.Eventually(t, resultWait, "the cashier kept answering /readyz 200 with RabbitMQ away", func() bool {
		return get(cashier.addr, "/readyz") == http.StatusServiceUnavailable
	})
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/devices/"+devices+"-1/commands",
		strings.NewReader(`{"jsonrpc":"2.0","method":"echo","id":1}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("with RabbitMQ away: got %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}

	proxy.Restore()
	cashier.waitReady(t)
	a.submit(t, devices+"-1", `{"jsonrpc":"2.0","method":"echo","id":2}`)
	if n := brokertest.QueueDepth(t, top.CommandsQueue()); n != 1 {
		t.Errorf("commands queue holds %d, want only the command sent after RabbitMQ came back", n)
	}
}

// SIGHUP reloads the client registry: a new token works, a removed one is
// refused, without a restart.
func TestRegistryReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{})
	a := pipelineApp(p)
	dev := p.devices + "-1"
	valid := `{"jsonrpc":"2.0","method":"echo","id":1}`

	renewed := client{id: p.client.id, token: randomToken()}
	doc, err := os.ReadFile(writeRegistry(t, renewed, p.devices, p.devices+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.registry, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	p.cashier.signal(t, syscall.SIGHUP)
	brokertest.Eventually(t, resultWait, "the new token was never accepted after SIGHUP", func() bool {
		status, _ := a.send(t, renewed.token, dev, valid, false)
		return status == http.StatusAccepted
	})
	if status, answer := a.post(t, dev, valid); status != http.StatusUnauthorized {
		t.Errorf("old token after reload: got %d %s, want 401", status, answer)
	}
}

// An app that is away gets the results sent meanwhile when it comes back,
// if it keeps a persistent session (fixed client id, clean session false,
// QoS 1 subscription), as the caller's documentation says.
func TestOfflineAppGetsResultsLater(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{baristas: 1, callers: 1})
	devices := p.startDevices(t, 1)
	online := pipelineApp(p) // tells the test when the result has been delivered
	inbox := &watcher{}
	sessionID := brokertest.ID(t, "away")
	forgetMQTTSessionAtEnd(t, sessionID) // whatever happens below
	connectApp := func() (stop func()) {
		link, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: sessionID, CleanSession: false}, quietLog)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if err := link.Subscribe(ctx, contracts.ResultsTopic(p.client.id), 1, func(topic string, payload []byte) {
			inbox.mu.Lock()
			inbox.got = append(inbox.got, command{topic, append([]byte(nil), payload...)})
			inbox.mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		stop = link.Background()
		if err := link.WaitConnected(ctx); err != nil {
			stop()
			t.Fatal(err)
		}
		return stop
	}

	connectApp()() // subscribe, then go away keeping the session
	online.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","params":["later"],"id":"away-1"}`, "Cafe-Timeout", "10s")
	online.wait(t, `"away-1"`, resultWait)

	t.Cleanup(connectApp())
	inbox.waitFor(t, 1, "the result sent while the app was away never reached it")
	if got := inbox.messages(); len(got) != 1 || string(got[0].payload) != `{"jsonrpc":"2.0","id":"away-1","result":["later"]}` {
		t.Errorf("app got %q, want the one result", got)
	}
}
