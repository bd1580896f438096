package tier_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"cafe/cmd/internal/tier/tiertest"
	"cafe/contracts/brokertest"
)

// TestTierScript runs deploy/mosquitto/tier.sh (what task tier:up,
// tier:status and tier:down run) on spare ports in a folder of the test's
// own: up starts a core and two bridged edges and writes tier.env, status
// says so, down stops them all.
func TestTierScript(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: tier.sh builds bin/cafe and starts three brokers")
	}
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Skip("no mosquitto binary (apt-get install mosquitto):", err)
	}
	dir := brokertest.ScratchDir(t)
	registry := filepath.Join(t.TempDir(), "clients.yaml")
	if err := os.WriteFile(registry, []byte(brokertest.DevicesYAML(brokertest.ID(t, "d"))), 0o600); err != nil {
		t.Fatal(err)
	}
	core, first := tiertest.SparePorts(t, 2)
	env := append(os.Environ(), "CAFE_TIER_DIR="+filepath.Join(dir, "tier"), "CAFE_TIER_EDGES=2", "CAFE_CLIENTS_FILE="+registry,
		"CAFE_TIER_CORE_PORT="+strconv.Itoa(core), "CAFE_TIER_EDGE_PORT="+strconv.Itoa(first))
	script := func(cmd string) (string, error) {
		c := exec.Command("bash", "../../../deploy/mosquitto/tier.sh", cmd)
		c.Env = env
		out, err := c.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = script("down") })

	if out, err := script("up"); err != nil {
		t.Fatalf("tier.sh up: %v\n%s", err, out)
	}
	envFile, err := os.ReadFile(filepath.Join(dir, "tier", "tier.env"))
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := "CAFE_TIER_CORE_URL=tcp://127.0.0.1:" + strconv.Itoa(core) + "\nCAFE_TIER_EDGE_URLS=tcp://127.0.0.1:" + strconv.Itoa(first) +
		",tcp://127.0.0.1:" + strconv.Itoa(first+1) + "\n"
	if string(envFile) != wantEnv {
		t.Errorf("tier.env:\n%s\nwant:\n%s", envFile, wantEnv)
	}
	out, err := script("status")
	if err != nil {
		t.Fatalf("tier.sh status: %v\n%s", err, out)
	}
	for _, want := range []string{"bridge edge-1: connected", "bridge edge-2: connected", "logins: cafe broker-auth pid", "janitor: cafe tier janitor pid"} {
		if !strings.Contains(out, want) {
			t.Errorf("tier.sh status says no %q:\n%s", want, out)
		}
	}
	if out, err := script("down"); err != nil || strings.Count(out, "stopped") != 3 {
		t.Fatalf("tier.sh down: %v, want three brokers stopped:\n%s", err, out)
	}
	if out, err := script("status"); err == nil || strings.Count(out, "DOWN") != 3 {
		t.Errorf("tier.sh status after down: %v, want exit 1 and three brokers down:\n%s", err, out)
	}
}
