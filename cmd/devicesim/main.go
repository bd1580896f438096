// Command devicesim runs a fleet of simulated devices that follow cafe's
// device contract: each its own MQTT connection, announcing presence,
// answering JSON-RPC commands (echo, sleep, fail, never) and remembering
// repeat keys. Tests, demos and benchmarks point the pipeline at it. See
// package cafe/cmd/internal/devicesim for what exactly a device does.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/devicesim"
	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// gcPercent is the binary's GOGC unless the environment sets one: a
// fleet's heap is nearly all long-lived (devices, connections), so a
// tighter target than Go's 100 costs little CPU and keeps the resident set
// near the live heap (README, "Fleet test").
const gcPercent = 50

func main() {
	cli.SetGC(gcPercent)
	if err := command().Execute(); err != nil {
		os.Exit(1) // cobra has printed the error
	}
}

func command() *cobra.Command {
	s := &simSettings{cfg: devicesim.Defaults()}
	cmd := &cobra.Command{
		Use:   "devicesim",
		Short: "Simulate a fleet of devices that answer cafe's commands over MQTT",
		Long: `devicesim connects --count simulated devices to the MQTT broker, each with a
connection of its own (user name and client id = its id), ids formatted from --pattern and
numbers counting from --first. A device costs about 7 KB of memory and one open
file (its TCP connection); for more devices than one process may open files, run one
process per broker or per range of ids (--first, --count). Each device:

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

  # a large fleet as one process per edge broker (each device is an open file:
  # a process may hold ulimit -n of them), ids numbered apart:
  devicesim --mqtt-url tcp://127.0.0.1:1901 --first 1     --count 15000 --keepalive 2m &
  devicesim --mqtt-url tcp://127.0.0.1:1902 --first 15001 --count 15000 --keepalive 2m &

  # then, with mosquitto-clients:
  mosquitto_sub -t 'devices/sim-1/replies/#' -v &
  mosquitto_pub -t devices/sim-1/commands/me/k1 -q 1 -m '{"jsonrpc":"2.0","id":1,"method":"echo","params":[42]}'`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE:         func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	s.Register(cli.On(cmd.Flags()))
	return cmd
}

// simSettings are everything devicesim is configured with.
type simSettings struct {
	brokers     cli.Brokers
	cfg         devicesim.Config
	logging     cli.Log
	statsFile   string
	secretsFile string
}

// SettingSecretsFile is where the devices' secrets come from.
var SettingSecretsFile = cli.Setting("secrets-file", "CAFE_SIM_SECRETS_FILE")

// Register adds devicesim's flags, from package devicesim's settings.
func (s *simSettings) Register(f cli.Flags) {
	c := &s.cfg
	s.brokers.RegisterMQTT(f)
	f.Int(&c.Count, devicesim.SettingCount, devicesim.DefaultCount, fmt.Sprintf("number of devices, 1 to %d", devicesim.MaxCount))
	f.String(&c.Pattern, devicesim.SettingPattern, devicesim.DefaultPattern, "printf pattern of the device ids, given the device's number")
	f.Int(&c.First, devicesim.SettingFirst, devicesim.DefaultFirst, "number of the first device")
	f.Duration(&c.Latency, devicesim.SettingLatency, 0, "delay before every reply")
	f.Duration(&c.Jitter, devicesim.SettingJitter, 0, "random extra delay before every reply, up to this")
	f.Float(&c.ErrorRate, devicesim.SettingErrorRate, 0, "fraction (0 to 1) of requests answered with the simulated failure instead of run")
	f.Int64(&c.Seed, devicesim.SettingSeed, 0, "seed of the random choices, to reproduce a run (0: random; the summary prints it)")
	f.Int(&c.KeyMemory, devicesim.SettingKeyMemory, devicesim.DefaultKeyMemory, "repeat keys remembered by the whole fleet, split evenly over the devices")
	f.Duration(&c.KeepAlive, devicesim.SettingKeepAlive, devicesim.DefaultKeepAlive, "each device's MQTT keep-alive; the fleet pings about count/keepalive times a second, so raise it for large fleets")
	f.String(&s.statsFile, devicesim.SettingStatsFile, "", "on exit, write the counters as JSON to this file")
	f.String(&s.secretsFile, SettingSecretsFile, "", `the devices' secrets, "ID SECRET" lines (what cafe devices add prints); default: derived from this machine's registry (CAFE_CLIENTS_FILE) and auth key`)
	s.logging.Register(f)
}

// run runs the fleet until SIGINT or SIGTERM, says on stdout once every
// device is online, and on the way out writes the summary table to stderr
// and the counters to the stats file.
func (s *simSettings) run(cmd *cobra.Command) error {
	log, err := s.logging.Start(cmd.Flags(), cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	s.cfg.MQTTURL, s.cfg.MQTTTLS = s.brokers.MQTTURL, s.brokers.MQTTTLS
	if err := s.cfg.Validate(); err != nil { // as typed: New would take a zero for a default
		return err
	}
	if s.cfg.Secret, err = s.secrets(); err != nil {
		return err
	}
	fleet, err := devicesim.New(s.cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := cli.SignalContext()
	defer stop()
	announced := announceOnline(ctx, fleet, cmd.OutOrStdout())
	runErr := fleet.Run(ctx)
	<-announced
	stats := fleet.Stats()
	_ = stats.WriteTable(cmd.ErrOrStderr())
	if s.statsFile != "" {
		if err := stats.WriteFile(s.statsFile); err != nil {
			return errors.Join(runErr, err)
		}
	}
	return runErr
}

// secrets is where the devices' secrets come from: the secrets file, or
// this machine's registry and auth key, or (neither readable) nowhere:
// the devices log in with whatever the MQTT URL says.
func (s *simSettings) secrets() (func(string) string, error) {
	if s.secretsFile != "" {
		return devicesim.SecretsFile(s.secretsFile)
	}
	dir, err := local.Default()
	if err != nil {
		return nil, nil
	}
	key, err := identity.LoadKey(dir.KeyFile())
	if err != nil {
		return nil, nil
	}
	if _, err := os.Stat(dir.Registry()); err != nil {
		return nil, nil
	}
	return devicesim.DerivedSecrets(dir.Registry(), key)
}

// announceOnline prints "N devices online" on w once every device of fleet
// is; the channel it returns is closed when it has, or ctx ended first.
// First it hands the garbage of connecting back to the system: thousands
// of handshakes leave about 3 KB a device of freed heap that Go would
// otherwise return only slowly, and a fleet's memory is what its users
// measure.
func announceOnline(ctx context.Context, fleet *devicesim.Fleet, w io.Writer) <-chan struct{} {
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		if fleet.WaitOnline(ctx) == nil {
			debug.FreeOSMemory()
			fmt.Fprintf(w, "%d devices online\n", len(fleet.IDs()))
		}
	}()
	return announced
}
