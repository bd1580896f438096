package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/bench"
	"cafe/cmd/internal/cli"
)

// exitBenchFailed: a target failed, or results went missing.
const exitBenchFailed = 1

func benchCommand() *cobra.Command {
	cfg := bench.Defaults()
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the running pipeline's latency and throughput, against the brokers' own floor",
		Long: `bench drives a RUNNING pipeline (cafe up, or the separate binaries) over HTTP
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

--cashier-only measures the cashier alone (stop the barista first): only the
202s count, no devices, no results. The commands it queues stay in the
commands queue; they expire after --timeout.

Exit status: 0 done, 1 a target failed or results were missing, 2 bad usage
or the pipeline or brokers could not be reached.`,
		Example: `  # in another terminal: cafe up   (or: task up)
  cafe bench                                      # 100/s for 10s against 10 devices
  cafe bench --floor --rate 500 --duration 10s    # and compare with the brokers' floor
  cafe bench --floor --concurrency 256            # capacity, closed loop
  cafe bench --floor --knee --rate 200            # find the highest rate with p99 ≤ 100ms
  cafe bench --cashier-only --floor --concurrency 256 --timeout 1s   # barista stopped
  cafe bench --rate 1000 --batch 10 --payload-bytes 1000 --devices 100 --device-latency 5ms
  cafe bench --scrape cafe=http://127.0.0.1:8080/metrics --out /tmp/run1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return &exitError{exitUsage, err}
			}
			if err := benchDefaults(cmd, &cfg); err != nil {
				return &exitError{exitUsage, err}
			}
			if err := cfg.Validate(); err != nil {
				return &exitError{exitUsage, err}
			}
			cfg.Stdout, cfg.Progress = cmd.OutOrStdout(), cmd.ErrOrStderr()
			ctx, stop := cli.SignalContext()
			defer stop()
			report, err := bench.Run(ctx, cfg)
			if err != nil {
				return err
			}
			if report.Failed() {
				return &exitError{exitBenchFailed, errors.New("a target failed or results were missing (see above)")}
			}
			return nil
		},
	}
	f := cli.On(cmd.Flags())
	f.String(&cfg.URL, cli.Setting("url", "CAFE_URL"), cfg.URL, "the cashier's base URL")
	f.String(&cfg.MQTTURL, cli.Setting("mqtt-url", "CAFE_MQTT_URL"), cfg.MQTTURL, "MQTT broker where results arrive and the simulated devices connect")
	f.String(&cfg.AMQPURL, cli.Setting("amqp-url", "CAFE_AMQP_URL"), cfg.AMQPURL, "RabbitMQ, for --floor")
	f.String(&cfg.Token, cli.Setting("token", "CAFE_TOKEN"), "", "the app's bearer token (default: the demo client's)")
	f.String(&cfg.ClientID, cli.Setting("client", "CAFE_CLIENT_ID"), "", "the app's client id, for its results topic (default: demo, with the demo token)")
	fs := cmd.Flags()
	fs.Float64Var(&cfg.Rate, "rate", bench.DefaultRate, "open loop: commands per second (with --knee: the first step, 200 unless given)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: commands in flight (instead of --rate)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to send")
	fs.IntVar(&cfg.Count, "count", 0, "how many commands to send (instead of --duration)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "the first part of sending that the statistics leave out (0 unless given with --count)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "simulated devices to start (commands go to them in turn)")
	fs.DurationVar(&cfg.DeviceLatency, "device-latency", 0, "simulated devices wait this long before replying")
	fs.StringVar(&cfg.Method, "method", cfg.Method, "JSON-RPC method (the simulated devices know echo, sleep, fail, never)")
	fs.IntVar(&cfg.PayloadBytes, "payload-bytes", cfg.PayloadBytes, "pad the params so that each request is about this many bytes")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "requests per HTTP call (a JSON-RPC batch, to one device)")
	fs.IntVar(&cfg.HTTPWorkers, "http-workers", cfg.HTTPWorkers, "HTTP connections (and open-loop senders)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "each command's deadline (Cafe-Timeout)")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after the last send, wait at most this long for the results still due")
	fs.StringVar(&cfg.Out, "out", "", "directory for report.json and the pictures (default bench-results/<timestamp>)")
	fs.StringArrayVar(&cfg.Scrape, "scrape", nil, "[name=]URL of a service's /metrics: report its RSS (end and max) and CPU (repeatable)")
	fs.BoolVar(&cfg.CashierOnly, "cashier-only", false, "measure the cashier alone (barista stopped): 202s per second; no devices, no results")
	fs.BoolVar(&cfg.Floor, "floor", false, "first measure the brokers' own hops, then judge the pipeline against them")
	fs.DurationVar(&cfg.FloorDuration, "floor-duration", cfg.FloorDuration, "--floor: length of each throughput floor")
	fs.IntVar(&cfg.LoneCount, "lone-count", cfg.LoneCount, "--floor: commands (and floor round trips) measured one at a time")
	fs.BoolVar(&cfg.Knee, "knee", false, "step the open-loop rate up until p99 exceeds --knee-p99 or results fall behind")
	fs.DurationVar(&cfg.KneeStep, "knee-step", cfg.KneeStep, "--knee: length of each step")
	fs.Float64Var(&cfg.KneeFactor, "knee-factor", cfg.KneeFactor, "--knee: rate multiplier from one step to the next")
	fs.DurationVar(&cfg.KneeP99, "knee-p99", cfg.KneeP99, "--knee: the p99 a step may not exceed")
	fs.IntVar(&cfg.KneeMaxSteps, "knee-max-steps", cfg.KneeMaxSteps, "--knee: at most this many steps")
	return cmd
}

// benchDefaults fills what depends on other flags: the load's kind, the
// warmup, the demo client, the output directory.
func benchDefaults(cmd *cobra.Command, cfg *bench.Config) error {
	fs := cmd.Flags()
	if fs.Changed("concurrency") && !fs.Changed("rate") {
		cfg.Rate = 0
	}
	if cfg.Knee && !fs.Changed("rate") {
		cfg.Rate = bench.DefaultKneeStart
	}
	if fs.Changed("count") {
		if fs.Changed("duration") {
			return fmt.Errorf("--count %d and --duration %v: give one", cfg.Count, cfg.Duration)
		}
		if cfg.Count < 1 {
			return fmt.Errorf("--count %d: want at least 1", cfg.Count)
		}
		cfg.Duration = 0
		if !fs.Changed("warmup") {
			cfg.Warmup = 0
		}
	}
	if cfg.Token == "" {
		if cfg.Token = demoToken(); cfg.Token == "" {
			return errors.New("no token: pass --token (or CAFE_TOKEN), or run `cafe up` once to create the demo client")
		}
		if cfg.ClientID == "" {
			cfg.ClientID = demoClientID
		}
	}
	if cfg.Out == "" {
		cfg.Out = "bench-results/" + time.Now().Format("20060102-150405")
	}
	return nil
}
