package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records/recordstest"
)

// `cafe order` against a pipeline of separate processes: its exit status
// says what became of the command.
func TestOrderCLI(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, setup{baristas: 1, callers: 1})
	devices := p.startDevices(t, 1)
	order := func(t *testing.T, token string, args ...string) (code int, stdout, out string) {
		t.Helper()
		base := []string{"order", "--url", p.url(), "--token", token, "--device", devices.ids[0]}
		// Its own config dir: no demo token of this machine's may be used.
		return run(t, 30*time.Second, "cafe", []string{"CAFE_CONFIG_DIR=" + t.TempDir()}, append(base, args...)...)
	}
	printed := func(t *testing.T, stdout string) contracts.Response {
		t.Helper()
		var resp contracts.Response
		if err := json.Unmarshal([]byte(stdout), &resp); err != nil {
			t.Fatalf("stdout is not the JSON-RPC response: %v\n%s", err, stdout)
		}
		return resp
	}

	t.Run("result exits 0", func(t *testing.T) {
		code, stdout, out := order(t, p.client.token, "--method", "echo", "--params", `{"hello":"cafe"}`, "--id", "o-1")
		if code != 0 {
			t.Fatalf("exit %d, want 0:\n%s", code, out)
		}
		resp := printed(t, stdout)
		if string(resp.ID) != `"o-1"` || resp.Error != nil || strings.Join(strings.Fields(string(resp.Result)), "") != `{"hello":"cafe"}` {
			t.Errorf("printed %s, want the echo of {\"hello\":\"cafe\"} for id o-1", stdout)
		}
	})
	t.Run("error result exits 1", func(t *testing.T) {
		code, stdout, out := order(t, p.client.token, "--method", "fail", "--id", "o-2")
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s", code, out)
		}
		if resp := printed(t, stdout); resp.Error == nil || resp.Error.Code != 1000 {
			t.Errorf("printed %s, want the device's error 1000", stdout)
		}
	})
	t.Run("refused exits 4", func(t *testing.T) {
		code, _, out := order(t, "wrong-token", "--method", "echo")
		if code != 4 {
			t.Fatalf("exit %d, want 4:\n%s", code, out)
		}
		if !strings.Contains(out, "401") {
			t.Errorf("output does not say the cashier answered 401:\n%s", out)
		}
	})
	t.Run("no result in time exits 3", func(t *testing.T) {
		p.baristas[0].stop(t, stopTimeout) // nothing will take the command
		began := time.Now()
		code, _, out := order(t, p.client.token, "--method", "echo", "--timeout", "500ms", "--extra-wait", "500ms")
		if code != 3 {
			t.Fatalf("exit %d, want 3:\n%s", code, out)
		}
		if took := time.Since(began); took < time.Second {
			t.Errorf("gave up after %v, before its timeout plus extra wait (1s)", took)
		}
	})
}

// `cafe up --devices 3` runs the whole pipeline in one process: it shows a
// demo token, `cafe order` with that token gets a result, and SIGTERM ends
// it cleanly.
func TestUpRunsWholePipeline(t *testing.T) {
	t.Parallel()
	u := startUp(t, 3)
	up, ids, token := u.svc, u.ids, u.token
	banner := up.stdout.String()
	for _, want := range []string{"cafe is up", "3 simulated devices", ids[0], token} {
		if token == "" || !strings.Contains(banner, want) {
			t.Errorf("banner does not show %q:\n%s", want, banner)
		}
	}
	// The banner's mosquitto_sub line logs in as the demo app.
	m := regexp.MustCompile(`mosquitto_sub .* -i (\S+) -u (\S+) -P '([^']+)'`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("banner has no mosquitto_sub line with a login:\n%s", banner)
	}
	if err := brokertest.ConnectOnce(brokertest.MQTTURLOf(m[2], m[3]), m[1]); err != nil {
		t.Errorf("the banner's MQTT login (user %s, client id %s) is refused: %v", m[2], m[1], err)
	}

	u.order(t)
	took := up.stop(t, 5*time.Second)
	t.Logf("cafe up exited 0 %v after SIGTERM", took.Round(time.Millisecond))
}

// `cafe up --ledgers 0` keeps no records, so RabbitMQ copies no command or
// result into the events queue (it is declared unbound): a bound copy is in
// the queue before the confirm that lets the cashier answer 202, so it would
// be there once `cafe order` has its result. The queue still exists, as
// every role's check of the topology wants. Not parallel: every cafe up
// here keeps the broker's "demo" login for its own demo token, so two at
// once would refuse each other's app.
func TestUpWithoutLedgersCopiesNothingToEvents(t *testing.T) {
	u := startUp(t, 1, "--ledgers", "0", "--postgres-url", "")
	for range 3 {
		u.order(t)
	}
	if n := brokertest.QueueDepth(t, u.top.EventsQueue()); n != 0 {
		t.Fatalf("events queue holds %d messages after 3 commands with no ledger, want 0", n)
	}
	u.svc.stop(t, 5*time.Second)
}

// With no ledger the cashier keeps no records even when it has a
// database: nothing could record the commands, so it neither looks each
// submission's id up (a PostgreSQL round trip on every command) nor
// serves records, and says why.
func TestUpWithoutLedgersReadsNoRecords(t *testing.T) {
	u := startUp(t, 1, "--ledgers", "0", "--postgres-url", recordstest.Schema(t))
	u.order(t)
	req, err := http.NewRequest(http.MethodGet, "http://"+u.svc.addr+"/v1/commands/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+u.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "--ledgers 0") {
		t.Errorf("GET /v1/commands/1 with no ledger: %d %s, want 503 naming --ledgers 0", resp.StatusCode, body)
	}
	u.svc.stop(t, 5*time.Second)
}

// upRun is a running `cafe up` with its simulated devices and demo token.
type upRun struct {
	svc   *service
	top   contracts.Topology
	ids   []string
	token string
	env   []string
}

// startUp runs `cafe up --devices n` (and args) on a topology of its own and
// waits for its banner.
func startUp(t *testing.T, n int, args ...string) upRun {
	t.Helper()
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "e2e")
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	pattern := brokertest.ID(t, "dev") + "-%d"
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf(pattern, i+1))
	}
	clearPresenceAtEnd(t, ids...)
	brokertest.DeleteLoginsAtEnd(t, append([]string{"demo"}, ids...)...) // cafe up's reconciler makes them
	configDir := t.TempDir()
	env := []string{"CAFE_CONFIG_DIR=" + configDir, "CAFE_AMQP_PREFIX=" + top.Prefix}
	up := startService(t, "cafe up", "cafe", env, append([]string{"up", "--devices", fmt.Sprint(n), "--device-pattern", pattern}, args...)...)
	up.waitReady(t)
	up.waitOutput(t, "Stop with Ctrl-C.", readyTimeout) // the end of the banner
	raw, err := os.ReadFile(filepath.Join(configDir, "demo.token"))
	if err != nil {
		t.Fatalf("no demo token next to the registry: %v\n%s", err, up.stdout.String())
	}
	return upRun{svc: up, top: top, ids: ids, token: strings.TrimSpace(string(raw)), env: env}
}

// order sends one echo with `cafe order` and checks its result.
func (u upRun) order(t *testing.T) {
	t.Helper()
	code, stdout, out := run(t, 30*time.Second, "cafe", u.env, "order", "--url", "http://"+u.svc.addr, "--token", u.token,
		"--client", "demo", "--device", u.ids[0], "--method", "echo", "--params", `[1,"two"]`)
	if code != 0 {
		t.Fatalf("cafe order: exit %d, want 0:\n%s", code, out)
	}
	var resp contracts.Response
	if err := json.Unmarshal([]byte(stdout), &resp); err != nil || resp.Error != nil || strings.Join(strings.Fields(string(resp.Result)), "") != `[1,"two"]` {
		t.Errorf("cafe order printed %s, want the echo of [1,\"two\"]", stdout)
	}
}
