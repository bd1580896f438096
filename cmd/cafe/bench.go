package main

import (
	"cmp"
	"errors"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"cafe/cmd/internal/bench"
	"cafe/cmd/internal/cli"
	"cafe/contracts"
)

// exitBenchFailed: a target failed, or results went missing.
const exitBenchFailed = 1

const benchLong = `bench drives a RUNNING pipeline (cafe up, or the separate binaries) over HTTP
and measures each command end to end: from its submission to the cashier to
its result on the app's MQTT topic (clients/{client}/results, subscribed at
QoS 1 before anything is sent), matched by the JSON-RPC id bench gave it. It
starts its own simulated devices (bench-<random>-N, so the client must be
entitled to them: the demo client of cafe up may command every device),
waits for them to come online, and stops them at the end.

Load:
  --rate R          open loop: R commands per second on a fixed schedule,
                    whatever the answers; latency counts from the time each
                    command was due, so a stall cannot hide (coordinated omission)
  --concurrency C   closed loop: C commands in flight; each sender waits for
                    its result before sending again
  --duration D | --count N, the first --warmup not measured.

It reports p50/p90/p99/p99.9/max end-to-end latency, accepted/s, results/s,
errors by code (HTTP status of refusals; JSON-RPC codes in results), results
missing after the drain, duplicates, and the cashier's own 202 latency; one
progress line per second on stderr; a table on stdout; and in --out
report.json with latency-over-time.png, throughput-over-time.png and
latency-histogram.png (knee.png with --knee).

For each phase it also reports the CPU per command of every process a
command goes through, read from /proc at the phase's start and end: the
--scrape targets (found by their metrics port; else their
process_cpu_seconds_total), RabbitMQ and Mosquitto (the processes listening
on the --amqp-url and --mqtt-url ports) and the bench itself, with their
read/write system calls per command (and a service's Go allocations per
command, from its /metrics). A process it cannot find is reported
with the reason. Run it as root (or the brokers' user) to see the brokers.

--floor first measures, on the same brokers and with the same message size,
what the hops a command crosses achieve alone (an AMQP publish-with-confirm
plus consume/ack on a private quorum queue; an MQTT QoS 1 round trip between
two clients), then sends commands one at a time, then runs the load, and
judges the pipeline against the floor: lone-command p50 ≤ 2× the sum of the
hops' p50; results/s ≥ 50% of the hops in series; with --cashier-only,
202s/s ≥ 70% of publish-with-confirm.

--knee steps the open-loop rate up from --rate by --knee-factor every
--knee-step until p99 exceeds --knee-p99 or results fall behind, and reports
the highest rate that held (the knee).

--against NAME=URL (repeatable) compares cafe with another implementation
of the same contract (bin/plaincafe): the floor once, then each named one
and then cafe (--url, --scrape), each with the lone phase, --concurrency
and, with --knee, the knee from 200/s; it prints one table (lone p50,
knee, throughput, CPU per command of the own processes, RabbitMQ and
Mosquitto, system calls and allocations) and writes compare.json, each
implementation's own report in --out/NAME.

--cashier-only measures the cashier alone (stop the barista first): only the
202s count, no devices, no results. The commands it queues stay in the
commands queue; they expire after --timeout.

Exit status: 0 done, 1 a target failed or results were missing, 2 bad usage
or the pipeline or brokers could not be reached.`

const benchExample = `  # in another terminal: cafe up   (or: task up)
  cafe bench                                      # 100/s for 10s against 10 devices
  cafe bench --floor --rate 500 --duration 10s    # and compare with the brokers' floor
  cafe bench --floor --concurrency 256            # capacity, closed loop
  cafe bench --floor --knee --rate 200            # find the highest rate with p99 ≤ 100ms
  cafe bench --cashier-only --floor --concurrency 256 --timeout 1s   # barista stopped
  cafe bench --rate 1000 --batch 10 --payload-bytes 1000 --devices 100 --device-latency 5ms
  cafe bench --scrape cafe=http://127.0.0.1:8080/metrics --out /tmp/run1`

func benchCommand() *cobra.Command {
	s := &benchSettings{cfg: bench.Defaults()}
	cmd := &cobra.Command{
		Use:     "bench",
		Short:   "Measure the running pipeline's latency and throughput, against the brokers' own floor",
		Long:    benchLong,
		Example: benchExample,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	s.Register(cli.On(cmd.Flags()))
	return cmd
}

// benchSettings are everything `cafe bench` is configured with.
type benchSettings struct {
	cfg bench.Config
}

// Register adds the bench's flags, from the settings and defaults of
// package bench, so that a name is written in one place only. They come in
// the groups the help text describes.
func (s *benchSettings) Register(f cli.Flags) {
	d, c := bench.Defaults(), &s.cfg
	registerWhere(f, c, d)
	registerLoad(f, c, d)
	registerCommands(f, c, d)
	registerFloorAndKnee(f, c, d)
}

// registerWhere adds where the pipeline and the brokers are, which app the
// bench is, and where its report goes.
func registerWhere(f cli.Flags, c *bench.Config, d bench.Config) {
	f.String(&c.URL, bench.SettingURL, d.URL, "the cashier's base URL")
	f.String(&c.MQTTURL, bench.SettingMQTTURL, d.MQTTURL, "MQTT broker where results arrive and the simulated devices connect")
	f.String(&c.AMQPURL, bench.SettingAMQPURL, d.AMQPURL, "RabbitMQ, for --floor")
	f.String(&c.CAFile, bench.SettingCAFile, "", "PEM file of a CA to trust for an https:// --url (default: the local CA of `cafe setup`, if any)")
	cli.RegisterTLS(f, &c.MQTTTLS, &c.AMQPTLS)
	f.String(&c.Token, bench.SettingToken, "", "the app's bearer token (default: the demo client's)")
	f.String(&c.ClientID, bench.SettingClientID, "", "the app's client id, for its results topic (default: demo, with the demo token)")
	f.String(&c.Out, bench.SettingOut, "", "directory for report.json and the pictures (default bench-results/<timestamp>)")
	f.StringArray(&c.Scrape, bench.SettingScrape, nil, "[name=]URL of a service's /metrics: report its RSS (end and max) and CPU, and a ledger's lag (repeatable)")
	f.StringArray(&c.Against, bench.SettingAgainst, nil, "NAME=URL of another implementation of the contract (bin/plaincafe) to measure before cafe in the same run, floor once, lone, --concurrency and --knee for each; prints the comparison (repeatable)")
	f.String(&c.PostgresURL, bench.SettingPostgresURL, d.PostgresURL, "the ledger's database, read (count(*), pg_total_relation_size) before and after each phase for rows and bytes per command (empty: not read)")
}

// registerLoad adds the load: open or closed loop, how long, how sent.
func registerLoad(f cli.Flags, c *bench.Config, d bench.Config) {
	f.Float(&c.Rate, bench.SettingRate, bench.DefaultRate, "open loop: commands per second (with --knee: the first step, 200 unless given)")
	f.Int(&c.Concurrency, bench.SettingConcurrency, 0, "closed loop: commands in flight (instead of --rate)")
	f.Duration(&c.Duration, bench.SettingDuration, d.Duration, "how long to send")
	f.Int(&c.Count, bench.SettingCount, 0, "how many commands to send (instead of --duration)")
	f.Duration(&c.Warmup, bench.SettingWarmup, time.Second, "the first part of sending that the statistics leave out (0 unless given with --count)")
	f.Bool(&c.CashierOnly, bench.SettingCashierOnly, false, "measure the cashier alone (barista stopped): 202s per second; no devices, no results")
	f.Int(&c.HTTPWorkers, bench.SettingHTTPWorkers, d.HTTPWorkers, "HTTP connections (and open-loop senders)")
	f.Duration(&c.Drain, bench.SettingDrain, d.Drain, "after the last send, wait at most this long for the results still due")
}

// registerCommands adds what each command is and the devices it goes to.
func registerCommands(f cli.Flags, c *bench.Config, d bench.Config) {
	f.Int(&c.Devices, bench.SettingDevices, d.Devices, "simulated devices to start (commands go to them in turn)")
	f.Duration(&c.DeviceLatency, bench.SettingDeviceLatency, 0, "simulated devices wait this long before replying")
	f.String(&c.Method, bench.SettingMethod, d.Method, "JSON-RPC method (the simulated devices know echo, sleep, fail, never)")
	f.Int(&c.PayloadBytes, bench.SettingPayloadBytes, d.PayloadBytes, "pad the params so that each request is about this many bytes")
	f.Int(&c.Batch, bench.SettingBatch, d.Batch, "requests per HTTP call (a JSON-RPC batch, to one device)")
	f.Duration(&c.Timeout, bench.SettingTimeout, d.Timeout, "each command's deadline (Cafe-Timeout)")
}

// registerFloorAndKnee adds the floor's and the knee's flags.
func registerFloorAndKnee(f cli.Flags, c *bench.Config, d bench.Config) {
	f.Bool(&c.Floor, bench.SettingFloor, false, "first measure the brokers' own hops, then judge the pipeline against them")
	f.Duration(&c.FloorDuration, bench.SettingFloorDuration, d.FloorDuration, "--floor: length of each throughput floor")
	f.Int(&c.LoneCount, bench.SettingLoneCount, d.LoneCount, "--floor: commands (and floor round trips) measured one at a time")
	f.Bool(&c.Knee, bench.SettingKnee, false, "step the open-loop rate up until p99 exceeds --knee-p99 or results fall behind")
	f.Duration(&c.KneeStep, bench.SettingKneeStep, d.KneeStep, "--knee: length of each step")
	f.Float(&c.KneeFactor, bench.SettingKneeFactor, d.KneeFactor, "--knee: rate multiplier from one step to the next")
	f.Duration(&c.KneeP99, bench.SettingKneeP99, d.KneeP99, "--knee: the p99 a step may not exceed")
	f.Int(&c.KneeMaxSteps, bench.SettingKneeMaxSteps, d.KneeMaxSteps, "--knee: at most this many steps")
}

// run runs the bench as configured, until it is done or interrupted.
func (s *benchSettings) run(cmd *cobra.Command) error {
	if err := s.configure(cmd.Flags()); err != nil {
		return &exitError{exitUsage, err}
	}
	cfg := s.cfg
	cfg.CAFile = cmp.Or(cfg.CAFile, localCA())
	cfg.Stdout, cfg.Progress = cmd.OutOrStdout(), cmd.ErrOrStderr()
	ctx, stop := cli.SignalContext()
	defer stop()
	if len(cfg.Against) > 0 {
		_, err := bench.Compare(ctx, cfg)
		return err
	}
	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if report.Failed() {
		return &exitError{exitBenchFailed, errors.New("a target failed or results were missing (see above)")}
	}
	return nil
}

// configure completes the configuration, from the environment and from
// the defaults that depend on other flags, and validates it, so that a
// usage error comes before anything connects.
func (s *benchSettings) configure(fs *pflag.FlagSet) error {
	if err := cli.ApplyEnv(fs); err != nil {
		return err
	}
	if err := s.defaults(fs); err != nil {
		return err
	}
	return s.cfg.Validate()
}

// defaults fills what depends on other flags: the load's kind, the
// warmup, the demo client, the output directory.
func (s *benchSettings) defaults(fs *pflag.FlagSet) error {
	cfg := &s.cfg
	given := func(st contracts.Setting) bool { return fs.Changed(st.Flag) }
	if given(bench.SettingConcurrency) && !given(bench.SettingRate) {
		cfg.Rate = 0
	}
	if cfg.Knee && !given(bench.SettingRate) && !given(bench.SettingConcurrency) {
		cfg.Rate = bench.DefaultKneeStart
	}
	if given(bench.SettingCount) {
		if given(bench.SettingDuration) {
			return bench.SettingCount.Errorf("%d and %s %v: give one", cfg.Count, bench.SettingDuration, cfg.Duration)
		}
		if cfg.Count < 1 {
			return bench.SettingCount.Errorf("%d: want at least 1", cfg.Count)
		}
		cfg.Duration = 0
		if !given(bench.SettingWarmup) {
			cfg.Warmup = 0
		}
	}
	if cfg.Token == "" {
		if cfg.Token = demoToken(); cfg.Token == "" {
			return bench.ErrNoToken
		}
		if cfg.ClientID == "" {
			cfg.ClientID = demoClientID
		}
	}
	if cfg.Out == "" {
		cfg.Out = "bench-results/" + time.Now().Format("20060102-150405")
	}
	if registry, _, err := demoPaths(); err == nil && !cfg.CashierOnly {
		cfg.RegisterDevices = temporaryDevices(registry)
	}
	return nil
}
