package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/mgmt"
	"cafe/cmd/internal/status"
	"cafe/contracts"
	"cafe/contracts/identity"
)

// The settings of cafe status.
var (
	SettingManagementURL  = mgmt.Setting
	SettingBaristaMetrics = status.SettingBaristaMetrics
	SettingCallerMetrics  = status.SettingCallerMetrics
)

type statusSettings struct {
	brokers          cli.Brokers
	management       string
	baristas, caller []string
	devices          string
	asJSON, watch    bool
	interval         time.Duration
	timeout          time.Duration
}

func statusCommand() *cobra.Command {
	var s statusSettings
	cmd := &cobra.Command{
		Use:   "status",
		Short: "The pipeline at a glance: queues, workers, devices online, breakers, dead letters, oldest command",
		Long: `status shows, on one screen, as cafe-ops:

  queues     each queue's messages, ready and unacked, consumers, and rates in
             (publishes/s) and out (acks/s), from RabbitMQ's management API
  baristas   consumers on the commands queue, and which --barista-metrics answer
  callers    consumers on the results queue, and which --caller-metrics answer
  devices    devices online, from their retained presence on MQTT
  breakers   circuit breakers open, from the baristas' metrics
  dead       dead letters by reason (browsed safely, only when the queue changed)
  oldest     the oldest waiting command's age: from the baristas' metrics
             (cafe_barista_queue_wait_seconds), else estimated as ready ÷ rate
             out; the commands queue is never peeked (that would count a
             delivery against the command)

A source that cannot be read is reported with what to do, and the others are
still shown; the exit status is then 1. --watch refreshes until Ctrl-C.`,
		Example: `  cafe status
  cafe status --watch --interval 5s
  cafe status --json | jq '.queues[] | {name, ready, rate_out}'
  cafe status --barista-metrics http://127.0.0.1:9101/metrics,http://127.0.0.1:9102/metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.run(cmd) },
	}
	f := cli.On(cmd.Flags())
	s.brokers.Register(f)
	f.String(&s.management, SettingManagementURL, mgmt.DefaultURL, "RabbitMQ management API (rabbitmq_management); login: the URL's, else cafe-ops'")
	f.StringSlice(&s.baristas, SettingBaristaMetrics, nil, "the baristas' /metrics URLs (comma-separated), for breakers and the oldest command's age")
	f.StringSlice(&s.caller, SettingCallerMetrics, nil, "the callers' /metrics URLs (comma-separated)")
	cmd.Flags().StringVar(&s.devices, "devices", "", "count only devices whose id matches this pattern (lamp-*)")
	cmd.Flags().BoolVar(&s.asJSON, "json", false, "print the state as JSON (one object per refresh)")
	cmd.Flags().BoolVar(&s.watch, "watch", false, "refresh every --interval until interrupted")
	cmd.Flags().DurationVar(&s.interval, "interval", 2*time.Second, "how often --watch refreshes")
	cmd.Flags().DurationVar(&s.timeout, "timeout", 5*time.Second, "how long each source may take")
	return cmd
}

func (s *statusSettings) config() (status.Config, error) {
	if s.interval < 500*time.Millisecond {
		return status.Config{}, fmt.Errorf("--interval %v: want at least 500ms", s.interval)
	}
	if s.timeout <= 0 {
		return status.Config{}, fmt.Errorf("--timeout %v: want a positive duration", s.timeout)
	}
	if err := httpURL(SettingManagementURL.String(), s.management); err != nil {
		return status.Config{}, err
	}
	for _, u := range append(append([]string{}, s.baristas...), s.caller...) {
		if err := httpURL("--barista-metrics / --caller-metrics", u); err != nil {
			return status.Config{}, err
		}
	}
	amqpURL := cli.AMQPWithRole(s.brokers.AMQPURL, identity.Ops)
	cfg := status.Config{Topology: s.brokers.Topology(), ManagementURL: s.management, AMQPURL: amqpURL,
		MQTT: s.brokers.MQTT(identity.Ops, contracts.NewName("cafe-status-")), DevicePattern: s.devices,
		Baristas: s.baristas, Callers: s.caller, Timeout: s.timeout}
	cfg.MQTT.CleanSession = true
	if u, err := url.Parse(amqpURL); err == nil && u.User != nil {
		cfg.User = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	return cfg, nil
}

func httpURL(flag, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s %q: want http://host:port", flag, raw)
	}
	return nil
}

func (s *statusSettings) run(cmd *cobra.Command) error {
	if err := cli.ApplyEnv(cmd.Flags()); err != nil {
		return &exitError{exitUsage, err}
	}
	if err := s.brokers.Topology().Validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	cfg, err := s.config()
	if err != nil {
		return &exitError{exitUsage, err}
	}
	g := status.New(cfg, slog.New(slog.DiscardHandler))
	defer g.Close()
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	for {
		snap := g.Gather(ctx)
		if err := s.print(out, snap); err != nil {
			return err
		}
		if !s.watch {
			if len(snap.Errors) > 0 {
				return &exitError{1, fmt.Errorf("%d of the sources could not be read (see above)", len(snap.Errors))}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(s.interval):
		}
	}
}

func (s *statusSettings) print(out io.Writer, snap status.Snapshot) error {
	if s.asJSON {
		return json.NewEncoder(out).Encode(snap)
	}
	if f, ok := out.(*os.File); ok && s.watch && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(out, "\033[H\033[2J") // clear the screen between refreshes
	}
	return printStatus(out, snap)
}
