// Command devicesim runs a fleet of simulated devices that follow cafe's
// device contract: each its own MQTT connection, announcing presence,
// answering JSON-RPC commands (echo, sleep, fail, never) and remembering
// repeat keys. Tests, demos and benchmarks point the pipeline at it. See
// package cafe/cmd/internal/devicesim for what exactly a device does.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/devicesim"
)

func main() {
	if err := command().Execute(); err != nil {
		os.Exit(1) // cobra has printed the error
	}
}

func command() *cobra.Command {
	var (
		brokers   cli.Brokers
		cfg       = devicesim.Defaults()
		logging   cli.Log
		statsFile string
	)
	cmd := &cobra.Command{
		Use:   "devicesim",
		Short: "Simulate a fleet of devices that answer cafe's commands over MQTT",
		Long: `devicesim connects --count simulated devices to the MQTT broker, each with a
connection of its own (client id dev-{id}), ids formatted from --pattern and
numbers counting from --first. Each device:

  - subscribes to devices/{id}/commands/# and announces itself with a retained
    {"online":true} on devices/{id}/presence (last will {"online":false});
  - answers every JSON-RPC request on the command's topic with "commands"
    replaced by "replies", copying the request's id exactly:
      echo   result: the params as sent
      sleep  params {"ms":N} or [N]: replies {"slept_ms":N} after N ms (at most 10m)
      fail   error 1000 "simulated failure", data: the params
      never  no reply
    Notifications (no id) are run, never answered. --latency and --jitter delay
    every reply; --error-rate fails that fraction of requests instead of
    running them (reproducible with --seed).
  - runs each repeat key (the topic's last level) once: a redelivery is
    answered again with the same reply, without running it again.

It prints "N devices online" on stdout once every device is up. On SIGINT or
SIGTERM every device publishes its offline presence and disconnects; then a
summary table goes to stderr and, with --stats-file, the counters to a JSON
file (format: go doc cafe/cmd/internal/devicesim).`,
		Example: `  devicesim
  devicesim --count 1000 --pattern lamp-%04d --latency 20ms --jitter 30ms --error-rate 0.01
  CAFE_MQTT_URL=tcp://mqtt:1883 devicesim --count 5 --seed 42 --stats-file sim-stats.json

  # then, with mosquitto-clients:
  mosquitto_sub -t 'devices/sim-1/replies/#' -v &
  mosquitto_pub -t devices/sim-1/commands/me/k1 -q 1 -m '{"jsonrpc":"2.0","id":1,"method":"echo","params":[42]}'`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.ApplyEnv(cmd.Flags()); err != nil {
				return err
			}
			log, err := logging.Logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			cfg.MQTTURL = brokers.MQTTURL
			if err := cfg.Validate(); err != nil { // as typed: New would take a zero for a default
				return err
			}
			fleet, err := devicesim.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := cli.SignalContext()
			defer stop()
			announced := make(chan struct{})
			go func() {
				defer close(announced)
				if fleet.WaitOnline(ctx) == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "%d devices online\n", len(fleet.IDs()))
				}
			}()
			runErr := fleet.Run(ctx)
			<-announced
			stats := fleet.Stats()
			_ = stats.WriteTable(cmd.ErrOrStderr())
			if statsFile != "" {
				if err := stats.WriteFile(statsFile); err != nil {
					return errors.Join(runErr, err)
				}
			}
			return runErr
		},
	}
	f := cli.On(cmd.Flags())
	brokers.RegisterMQTT(f)
	f.Int(&cfg.Count, cli.Setting("count", "CAFE_SIM_COUNT"), devicesim.DefaultCount, fmt.Sprintf("number of devices, 1 to %d", devicesim.MaxCount))
	f.String(&cfg.Pattern, cli.Setting("pattern", "CAFE_SIM_PATTERN"), devicesim.DefaultPattern, "printf pattern of the device ids, given the device's number")
	f.Int(&cfg.First, cli.Setting("first", "CAFE_SIM_FIRST"), devicesim.DefaultFirst, "number of the first device")
	f.Duration(&cfg.Latency, cli.Setting("latency", "CAFE_SIM_LATENCY"), 0, "delay before every reply")
	f.Duration(&cfg.Jitter, cli.Setting("jitter", "CAFE_SIM_JITTER"), 0, "random extra delay before every reply, up to this")
	f.Float(&cfg.ErrorRate, cli.Setting("error-rate", "CAFE_SIM_ERROR_RATE"), 0, "fraction (0 to 1) of requests answered with the simulated failure instead of run")
	f.Int64(&cfg.Seed, cli.Setting("seed", "CAFE_SIM_SEED"), 0, "seed of the random choices, to reproduce a run (0: random; the summary prints it)")
	f.Int(&cfg.KeyMemory, cli.Setting("key-memory", "CAFE_SIM_KEY_MEMORY"), devicesim.DefaultKeyMemory, "repeat keys remembered by the whole fleet, split evenly over the devices")
	f.String(&statsFile, cli.Setting("stats-file", "CAFE_SIM_STATS_FILE"), "", "on exit, write the counters as JSON to this file")
	logging.Register(f)
	return cmd
}
