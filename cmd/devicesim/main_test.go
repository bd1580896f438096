package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/mqttlink"
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

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestBinary(t *testing.T) {
	bin := build(t)

	t.Run("serves until SIGTERM and writes its stats", func(t *testing.T) {
		t.Parallel()
		prefix := brokertest.ID(t, "d")
		statsFile := filepath.Join(t.TempDir(), "stats.json")
		cmd := exec.Command(bin, "--count", "2", "--pattern", prefix+"-%d", "--stats-file", statsFile, "--seed", "42")
		cmd.Env = append(os.Environ(), "CAFE_MQTT_URL="+brokertest.MQTTURL(), "CAFE_SIM_LATENCY=1ms")
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
			clearPresence(t, prefix+"-1", prefix+"-2")
		})
		brokertest.Eventually(t, 10*time.Second, "never printed that the devices are online", func() bool {
			return strings.Contains(stdout.String(), "2 devices online\n")
		})

		l, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "barista"), CleanSession: true}, quiet())
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var reply []byte
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		route := brokertest.ID(t, "r")
		_ = l.Subscribe(ctx, contracts.RepliesFilter(route), 1, func(_ string, p []byte) {
			mu.Lock()
			reply = append([]byte(nil), p...)
			mu.Unlock()
		})
		defer l.Background()()
		if err := l.WaitConnected(ctx); err != nil {
			t.Fatal(err)
		}
		err = l.Publish(ctx, mqttlink.Message{Topic: contracts.CommandTopic(prefix+"-2", route, "k1"), QoS: 1,
			Payload: []byte(`{"jsonrpc":"2.0","id":"b-1","method":"echo","params":{"n":1}}`)})
		if err != nil {
			t.Fatal(err)
		}
		brokertest.Eventually(t, 5*time.Second, "no reply from the binary's device", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return string(reply) == `{"jsonrpc":"2.0","id":"b-1","result":{"n":1}}`
		})

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
		offline := retained(t, contracts.PresenceTopic(prefix+"-1"), contracts.PresenceTopic(prefix+"-2"))
		for topic, p := range offline {
			if string(p) != `{"online":false,"sim":true}` {
				t.Errorf("%s after exit: %s, want offline", topic, p)
			}
		}
		b, err := os.ReadFile(statsFile)
		if err != nil {
			t.Fatal(err)
		}
		var s devicesim.Stats
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("stats file: %v\n%s", err, b)
		}
		want := devicesim.Counters{Received: 1, Executed: 1, RepliesSent: 1}
		if s.Seed != 42 || s.Totals != want || len(s.Devices) != 2 || s.Devices[1].ID != prefix+"-2" || s.Devices[1].Counters != want {
			t.Fatalf("stats file:\n%s\nwant seed 42, totals and %s-2 %+v", b, prefix, want)
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

// retained returns the retained message of each topic.
func retained(t *testing.T, topics ...string) map[string][]byte {
	t.Helper()
	var mu sync.Mutex
	got := map[string][]byte{}
	l, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "watch"), CleanSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, topic := range topics {
		_ = l.Subscribe(ctx, topic, 1, func(topic string, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			got[topic] = append([]byte(nil), p...)
		})
	}
	defer l.Background()()
	brokertest.Eventually(t, 5*time.Second, "retained messages missing", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(topics)
	})
	mu.Lock()
	defer mu.Unlock()
	return got
}

// clearPresence deletes the retained presence the binary's devices left.
func clearPresence(t *testing.T, ids ...string) {
	t.Helper()
	l, err := mqttlink.New(mqttlink.Config{URL: brokertest.MQTTURL(), ClientID: brokertest.ID(t, "janitor"), CleanSession: true}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Background()()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := l.Publish(ctx, mqttlink.Message{Topic: contracts.PresenceTopic(id), QoS: 1, Retained: true}); err != nil {
			t.Error(err)
		}
	}
}
