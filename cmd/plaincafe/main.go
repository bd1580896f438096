// Command plaincafe is a deliberately plain implementation of cafe's public
// contract, for `cafe bench --against` to measure cafe against in the same
// run (issue 13). In one process: the HTTP API the bench uses (POST
// /v1/devices/{id}/commands with cafe's bearer auth and envelope checks,
// parsed by package contracts so the wire is identical; POST /v1/sessions;
// /readyz; /metrics), a worker that carries each command to its device over
// MQTT, and a deliverer that hands each result to the app over MQTT.
//
// It keeps the guarantees (202 only after RabbitMQ confirmed the command;
// a command acked only after its result is confirmed; a result acked only
// after Mosquitto's PUBACK) and none of cafe's engineering: one confirm
// wait per publish, one goroutine per delivery, no batching, no coalesced
// acks, no gathered writes, no reconnect logic (a lost broker ends the
// process), no presence, breaker, dead letters, rate limits, records or
// status notices. Its queues ({prefix}.commands and {prefix}.results,
// quorum, declared as cafe-admin) are its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"cafe/cmd/internal/cli"
	"cafe/contracts/amqplink"
	"cafe/contracts/local"
	"cafe/contracts/mqttlink"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "plaincafe:", err)
		os.Exit(1)
	}
}

// config is plaincafe's configuration: flags, defaulting to cafe's
// environment variables where cafe has one.
type config struct {
	httpAddr, prefix, clientsFile, amqpURL, mqttURL string
	prefetch                                        int
}

func parseFlags() config {
	var c config
	dir, _ := local.Default()
	flag.StringVar(&c.httpAddr, "http-addr", envOr("CAFE_HTTP_ADDR", "127.0.0.1:8090"), "address of the HTTP API")
	flag.StringVar(&c.prefix, "prefix", "plain", "prefix of its two queues")
	flag.StringVar(&c.clientsFile, "clients-file", envOr("CAFE_CLIENTS_FILE", dir.Registry()), "client registry (re-read when it changes)")
	flag.StringVar(&c.amqpURL, "amqp-url", envOr(amqplink.SettingURL.Env, amqplink.DefaultURL), "RabbitMQ (logs in as cafe-admin unless the URL names a user)")
	flag.StringVar(&c.mqttURL, "mqtt-url", envOr(mqttlink.SettingURL.Env, mqttlink.DefaultURL), "Mosquitto (logs in as cafe-barista and cafe-caller)")
	flag.IntVar(&c.prefetch, "prefetch", 256, "deliveries in hand per consumer")
	flag.Parse()
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	cfg := parseFlags()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := start(cfg, cli.WithRole, log)
	if err != nil {
		return err
	}
	defer p.close()
	log.Warn("plaincafe listening", "addr", cfg.httpAddr, "prefix", cfg.prefix)
	select {
	case <-ctx.Done():
		return nil
	case err := <-p.failed:
		return errors.Join(errors.New("a broker link failed (plaincafe does not reconnect)"), err)
	}
}
