package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/records/recordstest"
)

// record is GET /v1/commands/{id}'s body, as an app reads it.
type record struct {
	Status  string                    `json:"status"`
	History []struct{ Status string } `json:"history"`
	Result  json.RawMessage           `json:"result"`
}

func (a *app) record(t testing.TB, path string) (int, record) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.client.token)
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var r record
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("GET %s: %s: %v", path, body, err)
		}
	}
	return res.StatusCode, r
}

// With the real binaries (cashier, barista, caller and a ledger on a
// database schema of the test's own), every command's record ends done or
// delivered, with the exact bytes the app got over MQTT, found at the 202's
// Location, and its history starts queued.
func TestRecordsOfThePipeline(t *testing.T) {
	db := recordstest.Schema(t)
	dbEnv := "CAFE_POSTGRES_URL=" + db
	p, devices, a := scene(t, setup{baristas: 1, callers: 1, cashierEnv: []string{dbEnv}}, 1)
	ledger := startService(t, "ledger", "ledger", append([]string{dbEnv}, p.env...))
	ledger.waitReady(t)
	const n = 20
	paths := map[string]string{}
	for i := range n {
		id := fmt.Sprintf(`"r-%d"`, i)
		status, answer, loc := a.postWithLocation(t, devices.ids[0], fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","params":{"i":%d},"id":%s}`, i, id))
		if status != http.StatusAccepted || loc == "" {
			t.Fatalf("POST: %d %s, Location %q", status, answer, loc)
		}
		paths[id] = loc
	}
	for id, path := range paths {
		pushed := a.wait(t, id, resultWait)
		var rec record
		brokertest.Eventually(t, resultWait, "the ledger records "+id+" as done", func() bool {
			_, rec = a.record(t, path)
			return rec.Result != nil
		})
		if string(rec.Result) != string(pushed.raw) {
			t.Errorf("%s: recorded %s, pushed %s: want the same bytes", id, rec.Result, pushed.raw)
		}
		if len(rec.History) == 0 || rec.History[0].Status != "queued" || (rec.Status != "done" && rec.Status != "delivered") {
			t.Errorf("%s: status %s history %+v", id, rec.Status, rec.History)
		}
	}
	if code, _ := a.record(t, "/v1/commands/never-sent"); code != http.StatusNotFound {
		t.Errorf("a command never sent: %d, want 404", code)
	}
}

// postWithLocation posts body with the app's token and returns the
// status, body and Location of the answer.
func (a *app) postWithLocation(t testing.TB, device, body string) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.base+"/v1/devices/"+device+"/commands", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.client.token)
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	return res.StatusCode, answer, res.Header.Get("Location")
}

// A barista killed while it holds a command: the ledger's history shows
// the command queued, sent (by the second barista, and by the killed one
// when its fire-and-forget "sent" event left before the kill), done once
// and delivered, with the one result the app got. The roles log in as
// cafe-admin here, so that the "sent" and "delivered" events are allowed
// whether or not this broker's grants were updated for the events exchange.
func TestKilledBaristaLeavesOneFinalResultInTheLedger(t *testing.T) {
	db := recordstest.Schema(t)
	admin := []string{"CAFE_AMQP_URL=" + brokertest.AMQPURL()}
	dbEnv := "CAFE_POSTGRES_URL=" + db
	callerEnv := append([]string{"CAFE_RESULT_PUBLISHERS=cafe-barista,cafe-admin"}, admin...) // results now come from cafe-admin
	p, devices, a := scene(t, setup{callers: 1, cashierEnv: []string{dbEnv}, callerEnv: callerEnv}, 1)
	startService(t, "ledger", "ledger", append([]string{dbEnv}, p.env...)).waitReady(t)
	sent := watch(t, contracts.CommandsFilter(devices.ids[0]))
	doomed := p.addBarista(t, admin...)
	forgetMQTTSessionAtEnd(t, "cafe-barista-"+doomed.route)
	doomed.waitReady(t)
	p.waitConsumers(t, p.top.CommandsQueue(), 1)

	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"sleep","params":[500],"id":"k"}`, "Cafe-Timeout", "20s")
	sent.waitFor(t, 1, "the barista never sent the command to the device")
	doomed.signal(t, syscall.SIGKILL)
	doomed.wait(t, stopTimeout)
	p.addBarista(t, admin...).waitReady(t)

	pushed := a.wait(t, `"k"`, resultWait)
	var rec record
	brokertest.Eventually(t, resultWait, "the ledger records the command as delivered", func() bool {
		_, rec = a.record(t, "/v1/commands/k")
		return rec.Status == "delivered"
	})
	var steps []string
	for _, h := range rec.History {
		steps = append(steps, h.Status)
	}
	got := fmt.Sprint(steps)
	if (got != "[queued sent sent done delivered]" && got != "[queued sent done delivered]") || string(rec.Result) != string(pushed.raw) {
		t.Fatalf("history %v, want queued, sent (once or twice), done, delivered; result %s, pushed %s", steps, rec.Result, pushed.raw)
	}
}

// Cafe-Events: status brings queued, sent and done notices around the
// result, each in the documented envelope. As cafe-admin, like the test
// above: notices need the grants of the events change.
func TestStatusNoticesReachTheApp(t *testing.T) {
	admin := "CAFE_AMQP_URL=" + brokertest.AMQPURL()
	trust := []string{admin, "CAFE_COMMAND_PUBLISHERS=cafe-admin", "CAFE_RESULT_PUBLISHERS=cafe-admin"}
	_, devices, a := scene(t, setup{baristas: 1, callers: 1, cashierEnv: []string{admin}, baristaEnv: trust, callerEnv: trust}, 1)
	a.submit(t, devices.ids[0], `{"jsonrpc":"2.0","method":"echo","params":{"a":1},"id":"n-1"}`, "Cafe-Events", "status")
	var got []string
	brokertest.Eventually(t, resultWait, "three notices and the result", func() bool {
		got = got[:0]
		for _, r := range a.all() {
			var n struct{ Cafe, Status string }
			if json.Unmarshal(r.raw, &n) == nil && n.Cafe == "status" {
				got = append(got, n.Status)
			} else if string(r.resp.ID) == `"n-1"` {
				got = append(got, "result")
			}
		}
		return len(got) == 4
	})
	// queued (from the cashier) and sent (from the barista) travel
	// separately and, as documented, may arrive swapped; the result comes
	// before done, which the caller sends after it.
	if g := fmt.Sprint(got); g != "[queued sent result done]" && g != "[sent queued result done]" {
		t.Fatalf("the app got %v, want queued and sent (either order), the result, done", got)
	}
}

// The ghost of a refused command, with the real binaries: the commands
// queue is full (max length 1, no barista yet), so RabbitMQ nacks a
// command and the cashier answers 503, while the events queue takes its
// copy for the ledger. The cashier's refusal makes the record refused, not
// pending, so once the queue has room the app's retry with the same id is
// accepted (it got 409 for as long as the record was kept, before), runs,
// and its record is the retried command's, done with the result the app got.
func TestRefusedCommandFreesItsID(t *testing.T) {
	db := recordstest.Schema(t)
	dbEnv := "CAFE_POSTGRES_URL=" + db
	p, devices, a := scene(t, setup{callers: 1, cashierEnv: []string{dbEnv},
		topology: func(top *contracts.Topology) { top.CommandsMaxLength = 1 }}, 1)
	startService(t, "ledger", "ledger", append([]string{dbEnv}, p.env...)).waitReady(t)
	// A quorum queue applies its limit a little late: send until one is
	// refused (nothing consumes, so the queue stays full).
	id, body := "", ""
	for i := range 10 {
		id = fmt.Sprintf("ghost-%d", i)
		body = `{"jsonrpc":"2.0","method":"echo","params":{"g":1},"id":"` + id + `"}`
		status, answer := a.post(t, devices.ids[0], body)
		if status == http.StatusServiceUnavailable {
			break
		}
		if status != http.StatusAccepted || i == 9 {
			t.Fatalf("%s into a queue of max length 1: %d %s", id, status, answer)
		}
	}
	var rec record
	brokertest.Eventually(t, resultWait, "the ledger records "+id+" as refused", func() bool {
		_, rec = a.record(t, "/v1/commands/"+id)
		return rec.Status == "refused"
	})
	if len(rec.History) != 1 || rec.History[0].Status != "refused" || rec.Result != nil {
		t.Errorf("the refused command's record: %+v, want a refused step alone, no result", rec)
	}
	if status, answer := a.post(t, devices.ids[0], body); status != http.StatusServiceUnavailable {
		t.Fatalf("%s sent again into the full queue: %d %s, want 503 (not 409)", id, status, answer)
	}

	brokertest.Purge(t, p.top.CommandsQueue()) // room again
	if status, answer := a.post(t, devices.ids[0], body); status != http.StatusAccepted {
		t.Fatalf("%s sent again once the queue had room: %d %s, want 202", id, status, answer)
	}
	p.addBarista(t).waitReady(t)
	pushed := a.wait(t, `"`+id+`"`, resultWait)
	brokertest.Eventually(t, resultWait, "the ledger records the retried "+id+" as done", func() bool {
		_, rec = a.record(t, "/v1/commands/"+id)
		return rec.Result != nil
	})
	if string(rec.Result) != string(pushed.raw) || len(rec.History) == 0 || rec.History[0].Status != "queued" {
		t.Errorf("the retried command's record: %+v, pushed %s; want it from queued to done, with the result pushed", rec, pushed.raw)
	}
}
