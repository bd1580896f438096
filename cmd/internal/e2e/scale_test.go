package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/brokertest"
)

// `cafe up --autoscale` runs its baristas as child processes of the real
// barista binary: the banner says so, a command is answered, and SIGTERM
// stops them all and exits 0.
//
// Not parallel: like TestUpRunsWholePipeline it makes the MQTT login
// "demo" (with its own token's password), so the two must not overlap.
func TestUpAutoscaleRunsBaristaProcesses(t *testing.T) {
	top := contracts.DefaultTopology()
	top.Prefix = brokertest.ID(t, "e2e")
	t.Cleanup(func() { brokertest.DeleteTopology(t, top) })
	pattern := brokertest.ID(t, "dev") + "-%d"
	id := fmt.Sprintf(pattern, 1)
	clearPresenceAtEnd(t, id)
	brokertest.DeleteLoginsAtEnd(t, "demo", id)
	configDir := t.TempDir()
	env := []string{"CAFE_CONFIG_DIR=" + configDir, "CAFE_AMQP_PREFIX=" + top.Prefix, "CAFE_BARISTA_GRACE=2s"}

	up := startService(t, "cafe up --autoscale", "cafe", env, "up", "--autoscale", "--min", "1", "--max", "2", "--devices", "1", "--device-pattern", pattern)
	up.waitReady(t)
	up.waitOutput(t, "Stop with Ctrl-C.", readyTimeout)
	if banner := up.stdout.String(); !strings.Contains(banner, "1 to 2 baristas (autoscaled)") {
		t.Errorf("banner does not say the baristas are autoscaled:\n%s", banner)
	}
	// cafe up is ready once its cashier and caller are; the barista child
	// connects on its own (a command sent sooner waits for it, and may
	// expire on a loaded machine).
	brokertest.Eventually(t, readyTimeout, "no barista child is consuming", func() bool {
		return strings.Contains(up.out.String(), "msg=consuming role=barista")
	})
	raw, err := os.ReadFile(filepath.Join(configDir, "demo.token"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, out := run(t, 30*time.Second, "cafe", env, "order", "--url", "http://"+up.addr, "--token", strings.TrimSpace(string(raw)),
		"--client", "demo", "--device", id, "--method", "echo", "--params", `[7]`)
	var resp contracts.Response
	if code != 0 || json.Unmarshal([]byte(stdout), &resp) != nil || resp.Error != nil {
		t.Fatalf("cafe order: exit %d, printed %s:\n%s", code, stdout, out)
	}
	if log := up.out.String(); !strings.Contains(log, "worker started") {
		t.Errorf("cafe up logged no barista child started:\n%s", log)
	}
	up.stop(t, 10*time.Second)
	if log := up.out.String(); !strings.Contains(log, "worker stopped") {
		t.Errorf("cafe up did not log its barista stopping at exit")
	}
}

// cafe scale refuses bad flags with exit 2 and says which.
func TestScaleRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--min", "3", "--max", "1"}, "--min 3 is above --max 1"},
		{[]string{"--max", "0", "--min", "0"}, "--max 0"},
		{[]string{"--target-drain", "-5s"}, "--target-drain -5s"},
		{[]string{"--role", "ledger"}, `--role "ledger"`},
		{[]string{"--amqp-url", "amqp://127.0.0.1:1/"}, "cannot read the queue from RabbitMQ"},
	} {
		code, _, out := run(t, 30*time.Second, "cafe", nil, append([]string{"scale"}, c.args...)...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("cafe scale %v: exit %d, output %q; want exit 2 saying %q", c.args, code, out, c.want)
		}
	}
}
