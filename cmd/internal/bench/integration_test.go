package bench_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"cafe/cashier"
	"cafe/cmd/internal/bench"
	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/run"
	"cafe/contracts"
	"cafe/contracts/brokertest"
	"cafe/contracts/identity"
	"cafe/contracts/linktls"
	"cafe/contracts/registry"
)

// pipeline runs cashier, barista and caller in this process, as `cafe up`
// does, on a topology of the test's own, and returns the cashier's URL, a
// token of a client that may command every device, and the registry file
// (the bench registers its devices there).
func pipeline(t *testing.T, overTLS bool) (url, token, client, registryFile string) {
	t.Helper()
	top := brokertest.Topology(t)
	// No credentials in the URLs: each role logs in as itself, as on the
	// one-machine set-up (cli.WithRole).
	b, cs := brokersFor(top, overTLS)
	client, token = brokertest.ID(t, "app"), brokertest.ID(t, "token")
	sum := sha256.Sum256([]byte(token))
	// The app's MQTT login, as the cashier's POST /v1/sessions describes it.
	brokertest.Login(t, client, brokertest.Key().SessionKey().AppPassword(client, sum), "app")
	registry := filepath.Join(t.TempDir(), "clients.yaml")
	doc := fmt.Sprintf("clients:\n  - id: %s\n    token_sha256: %s\n    devices: [\"*\"]\n", client, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(registry, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	prom := run.NewRegistry()
	cs.ClientsFile = registry
	cash, err := run.NewCashier(b, cs, prom, log)
	if err != nil {
		t.Fatal(err)
	}
	bar, err := run.NewBarista(b, run.BaristaSettings{}, prom, log)
	if err != nil {
		t.Fatal(err)
	}
	call, err := run.NewCaller(b, run.CallerSettings{}, prom, log)
	if err != nil {
		t.Fatal(err)
	}
	p := &run.Pipeline{Cashier: cash, Baristas: []*run.Barista{bar}, Callers: []*run.Caller{call}, Log: log}
	brokertest.Start(t, p.Run)
	brokertest.Eventually(t, 20*time.Second, "the pipeline did not become ready", func() bool { return p.Ready() == nil })
	return cash.Scheme() + "://" + cash.Addr().String(), token, client, registry
}

// brokersFor is what a pipeline's roles connect with (each logs in as
// itself, as on the one-machine set-up, cli.WithRole) and the cashier's
// settings; over TLS, every link is.
func brokersFor(top contracts.Topology, overTLS bool) (cli.Brokers, run.CashierSettings) {
	cs := run.CashierSettings{Config: cashier.Config{Addr: "127.0.0.1:0"}}
	if !overTLS {
		return cli.BrokersOf(brokertest.AMQPBase(), brokertest.MQTTBase(), top), cs
	}
	b := cli.BrokersOf(brokertest.AMQPTLSBase(), brokertest.MQTTTLSBase(), top)
	b.AMQPTLS, b.MQTTTLS = linktls.Files{CA: brokertest.CAFile()}, linktls.Files{CA: brokertest.CAFile()}
	cs.Config.CertFile, cs.Config.KeyFile = brokertest.TLSFile("cashier.pem"), brokertest.TLSFile("cashier-key.pem")
	cs.Config.SessionMQTTURL = brokertest.MQTTTLSBase()
	return b, cs
}

// runBench runs a bench of cfg, writing to a folder of the test's own
// (cfg.Out), and returns its report and its table.
func runBench(t *testing.T, cfg *bench.Config) (*bench.Report, string) {
	t.Helper()
	cfg.Out = filepath.Join(t.TempDir(), "out")
	var stdout bytes.Buffer
	cfg.Stdout, cfg.Progress = &stdout, io.Discard
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	r, err := bench.Run(ctx, *cfg)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stdout.String())
	}
	t.Logf("bench took %v\n%s", time.Since(start).Round(time.Millisecond), stdout.String())
	return r, stdout.String()
}

// benchConfig is the configuration of a bench against a pipeline of the
// test's own, with the bench's devices registered.
func benchConfig(t *testing.T, overTLS bool) bench.Config {
	t.Helper()
	url, token, client, registryFile := pipeline(t, overTLS)
	cfg := bench.Defaults()
	cfg.URL, cfg.Token, cfg.ClientID = url, token, client
	// The bench's devices: registered for the cashier, with MQTT logins of
	// the test's own (no reconciler runs here; on the machine cafe up's does).
	cfg.RegisterDevices = func(ids []string) (func(string) string, func() error, error) {
		secrets := map[string]string{}
		for _, id := range ids {
			secrets[id] = brokertest.Device(t, id)
		}
		_, err := registry.EnsureDevices(registryFile, identity.NewKey(), ids)
		return func(id string) string { return secrets[id] }, func() error { return registry.RemoveDevices(registryFile, ids) }, err
	}
	return cfg
}

// A tiny bench against a real pipeline: every command gets its result,
// once, and the report and pictures are written. The floor runs too, on
// its own private queue, which is gone afterwards.
func TestBenchAgainstAPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the brokers and a pipeline")
	}
	cfg := benchConfig(t, false)
	cfg.MQTTURL, cfg.AMQPURL = brokertest.MQTTURL(), brokertest.AMQPURL()
	cfg.Rate, cfg.Count, cfg.Duration = 100, 50, 0
	cfg.Devices = 5
	cfg.Floor, cfg.FloorDuration, cfg.LoneCount = true, 300*time.Millisecond, 20
	r, stdout := runBench(t, &cfg)
	if r.Run == nil || r.Lone == nil || r.Floor == nil {
		t.Fatalf("run %v, lone %v, floor %v: want all three", r.Run != nil, r.Lone != nil, r.Floor != nil)
	}
	if got := r.Run; got.Sent != 50 || got.Accepted != 50 || got.Results != 50 || got.Missing != 0 || got.Duplicates != 0 || len(got.Errors) != 0 {
		t.Errorf("run: sent %d, accepted %d, results %d, missing %d, duplicates %d, errors %v; want 50 results, once each, no errors",
			got.Sent, got.Accepted, got.Results, got.Missing, got.Duplicates, got.Errors)
	}
	if r.Lone.Results != 20 || r.Lone.Latency.Count != 20 {
		t.Errorf("lone: %d results, %d latencies; want 20", r.Lone.Results, r.Lone.Latency.Count)
	}
	if f := r.Floor; f.AMQP.PublishPerS <= 0 || f.AMQP.HopPerS <= 0 || f.AMQP.Lone.Count != 20 || f.MQTT.RoundTripPerS <= 0 || f.MQTT.Lone.Count != 20 {
		t.Errorf("floor: %+v", f)
	}
	if len(r.Targets) != 2 {
		t.Errorf("targets: %+v, want lone command and throughput", r.Targets)
	}
	for _, name := range []string{"report.json", "latency-over-time.png", "throughput-over-time.png", "latency-histogram.png"} {
		if fi, err := os.Stat(filepath.Join(cfg.Out, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(stdout, "targets") {
		t.Errorf("the table has no targets:\n%s", stdout)
	}
	// Every queue and exchange of the floor's topology is gone (AMQP cannot
	// list by prefix: the topology's own list names them).
	top := contracts.DefaultTopology()
	top.Prefix = "bench-floor-" + r.Settings.RunID
	conn := brokertest.Dial(t)
	defer conn.Close()
	gone := func(kind, name string, declare func(ch *amqp.Channel) error) {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := declare(ch); err == nil {
			t.Errorf("the floor's %s %s is still there", kind, name)
			_ = ch.Close()
		}
	}
	for _, q := range top.Queues() {
		gone("queue", q.Name, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q.Name, true, false, false, false, nil)
			return err
		})
	}
	for _, e := range top.Exchanges() {
		gone("exchange", e.Name, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive(e.Name, e.Kind, true, false, false, false, nil)
		})
	}
}

// The bench over TLS on every link it uses: HTTPS to the cashier, the
// app's results, the devices and the MQTT floor on ssl://, the AMQP floor
// on amqps://, with the local CA.
func TestBenchOverTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the brokers and a pipeline")
	}
	cfg := benchConfig(t, true)
	cfg.CAFile = brokertest.CAFile()
	cfg.MQTTURL, cfg.AMQPURL = brokertest.MQTTTLSURLAs(identity.Admin), brokertest.AMQPTLSURLAs(identity.Admin)
	cfg.MQTTTLS, cfg.AMQPTLS = linktls.Files{CA: brokertest.CAFile()}, linktls.Files{CA: brokertest.CAFile()}
	cfg.Rate, cfg.Count, cfg.Duration, cfg.Devices = 100, 30, 0, 3
	cfg.Floor, cfg.FloorDuration, cfg.LoneCount = true, 300*time.Millisecond, 10
	r, stdout := runBench(t, &cfg)
	if !strings.HasPrefix(cfg.URL, "https://") {
		t.Fatalf("cashier at %s, want https", cfg.URL)
	}
	if got := r.Run; got == nil || got.Results != 30 || got.Missing != 0 || len(got.Errors) != 0 {
		t.Fatalf("run %+v: want 30 results, none missing, no errors\n%s", got, stdout)
	}
	if f := r.Floor; f == nil || f.AMQP.Lone.Count != 10 || f.MQTT.Lone.Count != 10 {
		t.Errorf("floor over TLS: %+v", f)
	}
}

// A CA file the bench cannot use stops it before it measures anything.
func TestBenchRefusesUnusableCAFile(t *testing.T) {
	cfg := bench.Defaults()
	cfg.Token, cfg.ClientID, cfg.Out = "t", "c", t.TempDir()
	cfg.CAFile = brokertest.TLSFile("client-key.pem")
	_, err := bench.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "CAFE_CA_FILE") {
		t.Fatalf("got %v, want an error naming CAFE_CA_FILE", err)
	}
}
