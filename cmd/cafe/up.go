package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/devicesim"
	"cafe/cmd/internal/run"
)

func upCommand() *cobra.Command {
	var (
		brokers  cli.Brokers
		cashier  run.CashierSettings
		barista  run.BaristaSettings
		caller   run.CallerSettings
		logging  cli.Log
		fleetCfg = devicesim.DefaultConfig()
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the whole pipeline on this machine: cashier, barista and caller in one process",
		Long: `up runs cafe's main job in one process against the configured brokers: the
cashier (HTTP on CAFE_HTTP_ADDR), a barista and a caller, and with --devices N
a fleet of N simulated devices. It stops cleanly on Ctrl-C or SIGTERM.

With no CAFE_CLIENTS_FILE, up uses a local registry in ~/.config/cafe (or
CAFE_CONFIG_DIR); on first run it creates a demo client that may command any
device and prints its token with ready-to-paste curl and mosquitto_sub lines.`,
		Example: `  cafe up --devices 10
  CAFE_HTTP_ADDR=:9090 cafe up --devices 100 --device-latency 5ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.Start(cmd.Flags(), os.Stderr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var token string
			var created bool
			if cashier.ClientsFile == "" {
				if cashier.ClientsFile, token, created, err = ensureDemo(); err != nil {
					return err
				}
			}
			prom := run.NewRegistry()
			cash, err := run.NewCashier(brokers, cashier, prom, log.With("role", "cashier"))
			if err != nil {
				return err
			}
			bar, err := run.NewBarista(brokers, barista, prom, log.With("role", "barista"))
			if err != nil {
				return err
			}
			call, err := run.NewCaller(brokers, caller, prom, log.With("role", "caller"))
			if err != nil {
				return err
			}
			var fleet *devicesim.Fleet
			if fleetCfg.Count > 0 {
				fleetCfg.MQTTURL = brokers.MQTTURL
				if fleet, err = devicesim.New(fleetCfg, log.With("role", "devicesim")); err != nil {
					return err
				}
			}

			ctx, stop := cli.SignalContext()
			defer stop()
			ctx, cancel := context.WithCancelCause(ctx)
			defer cancel(nil)
			fleetCtx, stopFleet := context.WithCancel(context.Background())
			fleetDone := make(chan struct{})
			go func() {
				defer close(fleetDone)
				if fleet != nil {
					if err := fleet.Run(fleetCtx); err != nil {
						cancel(fmt.Errorf("device simulator: %w", err))
					}
				}
			}()

			var wg sync.WaitGroup
			for name, svc := range map[string]func(context.Context) error{"cashier": cash.Run, "barista": bar.Run, "caller": call.Run} {
				wg.Go(func() {
					if err := svc(ctx); err != nil {
						cancel(fmt.Errorf("%s: %w", name, err))
					}
				})
			}
			go func() {
				if waitReady(ctx, cash.Ready, bar.Ready, call.Ready) && (fleet == nil || fleet.WaitOnline(ctx) == nil) {
					banner(out, cash.Addr(), brokers.MQTTURL, cashier.ClientsFile, token, created, fleet)
				}
			}()
			wg.Wait()
			stopFleet() // devices outlive the barista, so commands in hand can finish
			<-fleetDone
			if fleet != nil {
				_ = fleet.Stats().WriteTable(out)
			}
			if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	f := cli.On(cmd.Flags())
	brokers.Register(f)
	cashier.Register(f)
	barista.Register(f)
	caller.Register(f)
	f.Int(&fleetCfg.Count, "devices", "CAFE_DEVICES", 0, "run this many simulated devices in the same process (0: none)")
	f.String(&fleetCfg.Pattern, "device-pattern", "CAFE_DEVICE_PATTERN", devicesim.DefaultPattern, "printf pattern of simulated device ids, numbered from 1")
	f.Duration(&fleetCfg.Latency, "device-latency", "CAFE_DEVICE_LATENCY", 0, "simulated devices wait this long before replying")
	f.Float(&fleetCfg.ErrorRate, "device-error-rate", "CAFE_DEVICE_ERROR_RATE", 0, "fraction (0..1) of commands simulated devices answer with an error")
	logging.Register(f)
	return cmd
}

// waitReady polls until every check passes or ctx is done.
func waitReady(ctx context.Context, checks ...func() error) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		ready := true
		for _, c := range checks {
			if c() != nil {
				ready = false
			}
		}
		if ready {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// banner tells a newcomer what is running and how to use it.
func banner(w io.Writer, addr net.Addr, mqttURL, registry, token string, created bool, fleet *devicesim.Fleet) {
	port := "8080"
	if tcp, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(tcp.Port)
	}
	base := "http://127.0.0.1:" + port
	mqttHost, mqttPort := "127.0.0.1", "1883"
	if h, p, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(mqttURL, "tcp://"), "mqtt://")); err == nil {
		mqttHost, mqttPort = h, p
	}
	device := "lamp-1"
	fmt.Fprintf(w, "\ncafe is up: cashier %s, 1 barista, 1 caller", base)
	if fleet != nil {
		ids := fleet.IDs()
		device = ids[0]
		fmt.Fprintf(w, ", %d simulated devices (%s … %s)", len(ids), ids[0], ids[len(ids)-1])
	}
	fmt.Fprintf(w, "\nclient registry: %s\n", registry)
	if token == "" {
		fmt.Fprintf(w, "\nUse a token from your registry; results go to clients/{clientID}/results.\nStop with Ctrl-C.\n\n")
		return
	}
	if created {
		fmt.Fprintf(w, "created the demo client %q; its token (also kept next to the registry):\n  %s\n", demoClientID, token)
	}
	fmt.Fprintf(w, `
Watch the demo client's results (in another terminal):
  mosquitto_sub -h %s -p %s -t 'clients/%s/results' -q 1 -v

Send a command:
  curl -s -X POST %s/v1/devices/%s/commands -H 'Authorization: Bearer %s' -H 'Cafe-Timeout: 5s' -d '{"jsonrpc":"2.0","method":"echo","params":{"hello":"cafe"},"id":1}'

Or submit and wait for the result in one go:
  cafe order --device %s --method echo --params '{"hello":"cafe"}'

Stop with Ctrl-C.

`, mqttHost, mqttPort, demoClientID, base, device, token, device)
}
