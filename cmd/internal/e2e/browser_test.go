package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's package (deploy/chromium.sh installs it).
const chromium = "/usr/bin/chromium"

// browser is one headless Chromium for a test (one at a time: the machine
// has two cores), with the console's base URL.
type browser struct {
	ctx  context.Context
	base string
	dir  string // screenshots
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := exec.LookPath(chromium); err != nil {
		t.Skipf("no %s: install it with deploy/chromium.sh (apt-get install -y chromium)", chromium)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1100, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{ctx: ctx, base: base, dir: t.ArtifactDir()}
}

// do runs steps with a deadline, failing the test with what.
func (b *browser) do(t *testing.T, what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(t, what, err)
	}
}

// fail fails the test, showing where the browser is and what it shows.
func (b *browser) fail(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	t.Fatalf("%s: %v (at %s)\n%.3000s", what, err, loc, html)
}

// eval evaluates a JavaScript expression.
func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		b.fail(t, "evaluate "+js, err)
	}
	return v
}

// waitJS waits until the JavaScript expression is true.
func (b *browser) waitJS(t *testing.T, what, js string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.fail(t, what, err)
	}
}

func (b *browser) location(t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// screenshot saves the page as name.png in the test's artifacts and in
// docs/console (for the README).
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fail(t, "screenshot "+name, err)
	}
	for _, dir := range []string{b.dir, filepath.Join("..", "..", "..", "docs", "console")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot %s", filepath.Join(b.dir, name+".png"))
}

// pageWeight is the bytes the page and its assets took (their bodies, as
// the browser's resource timing counts them).
func (b *browser) pageWeight(t *testing.T) int {
	t.Helper()
	return eval[int](t, b, `performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).filter(e => !e.name.includes("/api/")).reduce((s, e) => s + e.decodedBodySize, 0)`)
}

// cell is the text of the table cell in row (whose first cell is key) and
// column col of table id, or "" when there is no such row.
func cellJS(table, key string, col int) string {
	return fmt.Sprintf(`(() => { const r = [...document.querySelectorAll("#%s tbody tr")].find(r => r.cells[0].textContent === %q); return r ? r.cells[%d].textContent : ""; })()`, table, key, col)
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }
