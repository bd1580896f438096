package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/devicesim/simtest"
	"cafe/contracts"
	"cafe/contracts/brokertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// build compiles the binary into a directory of the test's own.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "devicesim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// output is a buffer that a process writes to while the test reads it.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func TestBinary(t *testing.T) {
	bin := build(t)

	t.Run("serves until SIGTERM and writes its stats", func(t *testing.T) {
		t.Parallel()
		prefix := brokertest.ID(t, "d")
		statsFile := filepath.Join(t.TempDir(), "stats.json")
		secrets := filepath.Join(t.TempDir(), "secrets.txt")
		lines := prefix + "-1 " + brokertest.Device(t, prefix+"-1") + "\n" + prefix + "-2 " + brokertest.Device(t, prefix+"-2") + "\n"
		if err := os.WriteFile(secrets, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--count", "2", "--pattern", prefix+"-%d", "--stats-file", statsFile, "--seed", "42", "--secrets-file", secrets)
		cmd.Env = append(os.Environ(), "CAFE_MQTT_URL="+brokertest.MQTTBase(), "CAFE_SIM_LATENCY=1ms") // each device logs in as itself
		var stdout, stderr output
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-exited
			}
			simtest.ClearPresence(t, prefix+"-1", prefix+"-2")
		})
		brokertest.Eventually(t, 10*time.Second, "never printed that the devices are online", func() bool {
			return strings.Contains(stdout.String(), "2 devices online\n")
		})

		b := simtest.NewBarista(t)
		b.Send(prefix+"-2", "k1", `{"jsonrpc":"2.0","id":"b-1","method":"echo","params":{"n":1}}`)
		if got := string(b.Replies(prefix+"-2", "k1", 1)[0].Payload); got != `{"jsonrpc":"2.0","id":"b-1","result":{"n":1}}` {
			t.Fatalf("the binary's device replied %s", got)
		}

		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("still running 10s after SIGTERM")
		}
		if !strings.Contains(stderr.String(), "total") || !strings.Contains(stderr.String(), "seed 42") {
			t.Errorf("no summary table on stderr:\n%s", stderr.String())
		}
		for _, id := range []string{prefix + "-1", prefix + "-2"} {
			if got := retainedPresence(t, id); got != `{"online":false,"sim":true}` {
				t.Errorf("%s after exit: %s, want offline", contracts.PresenceTopic(id), got)
			}
		}
		stats, err := os.ReadFile(statsFile)
		if err != nil {
			t.Fatal(err)
		}
		var s devicesim.Stats
		if err := json.Unmarshal(stats, &s); err != nil {
			t.Fatalf("stats file: %v\n%s", err, stats)
		}
		want := devicesim.Counters{Received: 1, Executed: 1, RepliesSent: 1}
		if s.Seed != 42 || s.Totals != want || len(s.Devices) != 2 || s.Devices[1].ID != prefix+"-2" || s.Devices[1].Counters != want {
			t.Fatalf("stats file:\n%s\nwant seed 42, totals and %s-2 %+v", stats, prefix, want)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string // in stderr
	}{
		{"negative count", []string{"--count", "-1"}, nil, "count -1"},
		{"zero count", []string{"--count", "0"}, nil, "count 0"},
		{"error rate over one", []string{"--error-rate", "2"}, nil, "error rate 2"},
		{"pattern giving a bad id", []string{"--pattern", "bad/%d"}, nil, `gives "bad/1"`},
		{"pattern without a number", []string{"--pattern", "lamp"}, nil, "integer verb"},
		{"negative latency", []string{"--latency", "-1s"}, nil, "latency"},
		{"not a number in env", nil, []string{"CAFE_SIM_COUNT=abc"}, "CAFE_SIM_COUNT"},
		{"error rate in env", nil, []string{"CAFE_SIM_ERROR_RATE=1.5"}, "error rate 1.5"},
		{"bad mqtt url", []string{"--mqtt-url", "http://127.0.0.1:1883"}, nil, "scheme"},
		{"bad log level", []string{"--log-level", "loud"}, nil, "log level"},
		{"unknown flag", []string{"--nope"}, nil, "unknown flag"},
		{"argument", []string{"extra"}, nil, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.args...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("exit %v (context %v), want a quick failure\n%s", err, ctx.Err(), out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, out)
			}
		})
	}

	t.Run("help", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(bin, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for _, want := range []string{"Examples:", "--stats-file", "CAFE_MQTT_URL", "CAFE_SIM_COUNT", "devices online"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("--help does not mention %q", want)
			}
		}
	})
}

// retainedPresence returns the presence the broker keeps for device id:
// the first message a new subscriber gets.
func retainedPresence(t *testing.T, id string) string {
	t.Helper()
	w, topic := simtest.WatchPresence(t, brokertest.MQTTURL(), id), contracts.PresenceTopic(id)
	brokertest.Eventually(t, simtest.Wait, "no retained presence on "+topic, func() bool { return len(w.On(topic)) > 0 })
	return string(w.On(topic)[0].Payload)
}
