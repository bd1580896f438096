package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
)

// consoleScene is the console of one test's pipeline, as a process, with
// an operator registered to log in.
type consoleScene struct {
	p     *pipeline
	url   string
	token string
	proc  *proc
}

func startConsole(t *testing.T, p *pipeline) *consoleScene {
	t.Helper()
	code, out, all := run(t, 20*time.Second, "cafe", nil, "operators", "add", "--file", p.registry, "--id", "op-"+brokertest.ID(t, "x")[:8])
	if code != 0 {
		t.Fatalf("cafe operators add: exit %d\n%s", code, all)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return launchConsole(t, p, lines[len(lines)-1])
}

// launchConsole starts `cafe console` on p with extra settings.
func launchConsole(t *testing.T, p *pipeline, token string, extra ...string) *consoleScene {
	t.Helper()
	c := &consoleScene{p: p, token: token}
	env := append([]string{"CAFE_CLIENTS_FILE=" + p.registry, "CAFE_AUDIT_FILE=" + t.TempDir() + "/audit.jsonl",
		"CAFE_CONSOLE_METRICS_URL=http://" + p.callers[0].addr + "/metrics", "CAFE_CALLER_METRICS=http://" + p.callers[0].addr + "/metrics"}, p.env...)
	c.proc = start(t, "cafe console", "cafe", append(append(env, "CAFE_CONSOLE_ADDR=127.0.0.1:0"), extra...), "console")
	c.proc.waitOutput(t, "cafe console: http", readyTimeout)
	c.url = regexp.MustCompile(`http://127\.0\.0\.1:\d+`).FindString(c.proc.stdout.String())
	return c
}

// TestConsoleInBrowser drives the web console in headless Chromium against
// a real pipeline (cashier, caller, barista, devicesim and cafe console as
// processes, the shared brokers): refused without a login, logging in,
// devices coming online, a dead letter replayed and delivered, the commands
// queue rising and falling under a burst, one device found among 20,000
// retained presence messages; a screenshot of each page, and the figures.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test takes about 40 s")
	}
	p := newPipeline(t, setup{callers: 1})
	app := pipelineApp(p)
	c := startConsole(t, p)
	b := newBrowser(t, c.url)
	refusedWithoutLogin(t, b)
	logIn(t, b, c.token, "dead")
	fleet := devicesComeOnline(t, b, p)
	replayDeadLetter(t, b, p, app, fleet.ids[0])
	burstRisesAndFalls(t, b, p, app, fleet.ids)
	findOneAmong20000(t, b, p)
	b.do(t, "clients page", 10*time.Second, chromedp.Navigate(c.url+"/clients"), chromedp.WaitVisible(css("#clients tbody tr")))
	t.Logf("page weight clients: %d bytes", b.pageWeight(t))
	b.screenshot(t, "clients")
	b.do(t, "phone width", 10*time.Second, chromedp.EmulateViewport(390, 844), chromedp.Navigate(c.url+"/devices"), chromedp.WaitVisible(css("#devices tbody tr")))
	if w := eval[int](t, b, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("at phone width (390 px) the devices page is %d px wide: it should scroll only its table", w)
	}
	b.screenshot(t, "phone-devices")
	sourceDownIsShown(t, b, p, c.token)
}

// sourceDownIsShown starts a second console whose RabbitMQ management API
// cannot be reached, and checks that its pipeline page says so, with the
// time, instead of showing numbers.
func sourceDownIsShown(t *testing.T, b *browser, p *pipeline, token string) {
	c := launchConsole(t, p, token, "CAFE_MANAGEMENT_URL=http://127.0.0.1:1")
	b.base = c.url
	b.do(t, "the second console", 10*time.Second, chromedp.EmulateViewport(1100, 900), chromedp.Navigate(c.url+"/pipeline"), chromedp.WaitVisible(css("#token")))
	logIn(t, b, token, "pipeline")
	b.waitJS(t, "RabbitMQ named as down", `/RabbitMQ unreachable since \d\d:\d\d:\d\d/.test(document.querySelector("#sources").textContent)`, 15*time.Second)
	if rows := eval[int](t, b, `document.querySelectorAll("#queues tbody tr").length`); rows != 0 {
		t.Errorf("with RabbitMQ unreachable the page shows %d queue rows", rows)
	}
	b.screenshot(t, "source-down")
}

func refusedWithoutLogin(t *testing.T, b *browser) {
	b.do(t, "a page without login", 10*time.Second, chromedp.Navigate(b.base+"/dead"), chromedp.WaitVisible(css("#token")))
	loc := b.location(t)
	if !strings.HasPrefix(loc, b.base+"/login?next=%2Fdead") {
		t.Fatalf("/dead without a login ended at %s, want the login form", loc)
	}
	resp, err := http.Get(b.base + "/api/pipeline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/api/pipeline without a login: %d, want 401", resp.StatusCode)
	}
	t.Logf("page weight login: %d bytes", b.pageWeight(t))
	b.screenshot(t, "login")
}

func logIn(t *testing.T, b *browser, token, page string) {
	b.do(t, "log in with a wrong token", 10*time.Second, chromedp.SendKeys(css("#token"), "wrong"), chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css(".error")))
	b.do(t, "log in", 10*time.Second, chromedp.SetValue(css("#token"), token), chromedp.Submit(css("#token")),
		chromedp.WaitVisible(css("body[data-page="+page+"]")))
}

// devicesComeOnline watches this test's devices on the devices page while
// devicesim starts them.
func devicesComeOnline(t *testing.T, b *browser, p *pipeline) *fleet {
	b.do(t, "devices page", 10*time.Second, chromedp.Navigate(b.base+"/devices"), chromedp.WaitVisible(css("#devices")),
		chromedp.SetValue(css("#q"), p.devices+"-"), chromedp.SetValue(css("#presence"), "online"), chromedp.Click(css("#device-search button")))
	b.waitJS(t, "the search answered", `document.querySelector("#device-total").textContent === "0 matching"`, 10*time.Second)
	f := p.startDevices(t, 5, "--latency", "100ms")
	b.waitJS(t, "5 devices online on the page", `document.querySelectorAll("#devices tbody .online").length === 5`, 15*time.Second)
	t.Logf("page weight devices: %d bytes", b.pageWeight(t))
	b.screenshot(t, "devices")
	return f
}

// replayDeadLetter dead-letters a command (taken from the commands queue
// and rejected, as a barista does with one it cannot read), finds it on
// the dead-letters page, dry-runs and replays it, and the app gets its
// result once a barista runs.
func replayDeadLetter(t *testing.T, b *browser, p *pipeline, a *app, device string) {
	a.submit(t, device, `{"jsonrpc":"2.0","method":"echo","params":{"dead":1},"id":"dl-1"}`)
	conn := brokertest.Dial(t)
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	var msgID string
	brokertest.Eventually(t, 10*time.Second, "the command never reached the commands queue", func() bool {
		d, ok, err := ch.Get(p.top.CommandsQueue(), false)
		if err != nil || !ok {
			return false
		}
		msgID = d.MessageId
		return d.Reject(false) == nil
	})
	b.do(t, "dead letters page", 10*time.Second, chromedp.Navigate(b.base+"/dead"))
	b.waitJS(t, "the dead letter is listed", cellJS("dead", msgID, 1)+` === "rejected"`, 15*time.Second)
	t.Logf("page weight dead letters: %d bytes", b.pageWeight(t))
	b.screenshot(t, "dead")
	clickAction(t, b, "Dry run", msgID, "Dry run: would replay 1")
	p.addBarista(t, "CAFE_BARISTA_CONCURRENCY=4").waitReady(t) // slow enough for the burst to be seen
	p.waitConsumers(t, p.top.CommandsQueue(), 1)
	clickAction(t, b, "Replay", msgID, "Replayed 1")
	// The app first got the -32005 notice of the dead letter, then the
	// replayed command's own result.
	brokertest.Eventually(t, resultWait, "no result of the replayed command dl-1: "+a.summary(), func() bool {
		for _, r := range a.withID(`"dl-1"`) {
			if r.resp.Error == nil {
				return true
			}
		}
		return false
	})
}

func clickAction(t *testing.T, b *browser, label, id, want string) {
	b.do(t, label+" "+id, 10*time.Second, chromedp.Click(css(fmt.Sprintf(`button[aria-label=%s]`, quote(label+" "+id)))))
	b.waitJS(t, label+" answered", fmt.Sprintf(`document.querySelector("#dead-msg").textContent.startsWith(%q)`, want), 20*time.Second)
}

// burstRisesAndFalls submits a burst (400 commands) that the barista (4 at
// a time) and the devices (100 ms each) take about 10 s to work off and watches the commands queue's depth on the pipeline
// page rise above zero and come back to zero.
func burstRisesAndFalls(t *testing.T, b *browser, p *pipeline, a *app, devices []string) {
	b.do(t, "pipeline page", 10*time.Second, chromedp.Navigate(b.base+"/pipeline"), chromedp.WaitVisible(css("#queues tbody tr")))
	depth := cellJS("queues", p.top.CommandsQueue(), 1)
	var wg sync.WaitGroup
	for i, d := range devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 8 {
				batch := make([]string, 10)
				for k := range batch {
					batch[k] = fmt.Sprintf(`{"jsonrpc":"2.0","method":"echo","id":"burst-%d-%d-%d"}`, i, j, k)
				}
				a.submit(t, d, "["+strings.Join(batch, ",")+"]")
			}
		}()
	}
	wg.Wait()
	b.waitJS(t, "the commands queue's depth rises", `Number((`+depth+`).replace(/\D/g, "")) > 0`, 15*time.Second)
	b.screenshot(t, "pipeline")
	t.Logf("page weight pipeline: %d bytes", b.pageWeight(t))
	b.waitJS(t, "the commands queue's depth falls to 0", `(`+depth+`) === "0"`, 40*time.Second)
}

// findOneAmong20000 publishes 20,000 retained presence messages (removed
// at the end), loads the devices page, and searches for one of them.
func findOneAmong20000(t *testing.T, b *browser, p *pipeline) {
	prefix := p.devices + "-many"
	ids := make([]string, 20000)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	link := connect(t, "many", nil)
	t.Cleanup(func() { publishPresence(t, link, ids, nil) }) // an empty retained message clears it
	publishPresence(t, link, ids, []byte(`{"online":true}`))
	b.do(t, "devices page", 10*time.Second, chromedp.Navigate(b.base+"/devices"))
	b.waitJS(t, "the console knows the 20,000", `Number(document.querySelector("#known-count").textContent.replace(/\D/g, "")) >= 20000`, 30*time.Second)
	b.do(t, "devices page with 20,000", 20*time.Second, chromedp.Navigate(b.base+"/devices"), chromedp.WaitVisible(css("#devices tbody tr")))
	b.waitJS(t, "the first render is marked", `performance.getEntriesByName("devices-rendered").length > 0`, 10*time.Second)
	rendered := eval[float64](t, b, `performance.getEntriesByName("devices-rendered")[0].startTime`)
	known := eval[float64](t, b, `Number(document.querySelector("#known-count").textContent.replace(/\D/g, ""))`)
	t.Logf("devices page with %.0f devices known: first render (table filled) %.0f ms after navigation start", known, rendered)
	if known < 20000 {
		t.Errorf("the console knows %.0f devices, want at least 20,000", known)
	}
	want := ids[12345]
	b.do(t, "search one", 10*time.Second, chromedp.SetValue(css("#q"), want), chromedp.SetValue(css("#presence"), ""), chromedp.Click(css("#device-search button")))
	b.waitJS(t, "found one", `document.querySelector("#device-total").textContent === "1 matching" && `+cellJS("devices", want, 1)+` === "online"`, 10*time.Second)
	b.screenshot(t, "devices-search")
}

// publishPresence publishes payload retained on the presence topic of
// every id at QoS 1, 64 at a time (QoS 0 would be faster, but Mosquitto
// may drop QoS 0 messages to a subscriber that falls behind, and the test
// is of what the console receives).
func publishPresence(t *testing.T, link *mqttlink.Link, ids []string, payload []byte) {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < len(ids); i += 64 {
				if link.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(ids[i]), Payload: payload, QoS: 1, Retained: true}) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d presence messages (%q) were not published", n, len(ids), payload)
	}
	t.Logf("published %s retained presence messages (%q) in %v", strconv.Itoa(len(ids)), payload, time.Since(began).Round(time.Millisecond))
}

func css(s string) chromedp.CSS { return chromedp.CSS(s) }
