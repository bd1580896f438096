package main

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/deadletter"
	"cafe/cmd/internal/run"
	"cafe/contracts/amqplink"
	"cafe/contracts/identity"
	"cafe/contracts/local"
)

// SettingAuditFile is where replays and purges are recorded.
var SettingAuditFile = cli.Setting("audit-file", "CAFE_AUDIT_FILE")

// deadSettings are the flags every `cafe dead` command shares.
type deadSettings struct {
	brokers      cli.Brokers
	scanLimit    int
	registryFile string
	auditFile    string
}

func deadCommand() *cobra.Command {
	var s deadSettings
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "Inspect, replay and purge dead letters (commands and results the pipeline put aside)",
		Long: `dead works on the dead-letter queue ({prefix}.dead), as cafe-ops. A command lands
there when it is not a valid command or comes from an untrusted publisher
(reason "rejected") or was delivered too often, e.g. because it kept crashing
workers (reason "delivery_limit"); a result, when it cannot be delivered.
Nothing in it expires.

Looking (list, show) never removes or reorders a letter. replay and purge
choose letters with the same filters as list, and each run appends a line to
the audit file (CAFE_AUDIT_FILE).`,
	}
	f := cli.On(cmd.PersistentFlags())
	s.brokers.RegisterAMQP(f)
	dir, _ := local.Default()
	f.String(&s.registryFile, run.SettingClientsFile, dir.Registry(), "the registry replay re-checks letters against")
	f.String(&s.auditFile, SettingAuditFile, filepath.Join(string(dir), "audit.jsonl"), "JSON-lines file every replay and purge is recorded in")
	cmd.PersistentFlags().IntVar(&s.scanLimit, "scan-limit", deadletter.DefaultScanLimit, "look at no more than this many dead letters")
	cmd.AddCommand(deadListCommand(&s), deadShowCommand(&s), deadReplayCommand(&s), deadPurgeCommand(&s))
	return cmd
}

// opsLink is a connection to RabbitMQ as cafe-ops (unless the URL names
// another login) and the login it uses.
type opsLink struct {
	conn *amqp.Connection
	user string
}

func (s *deadSettings) dial(cmd *cobra.Command) (*opsLink, error) {
	if err := cli.ApplyEnv(cmd.Flags()); err != nil {
		return nil, err
	}
	if err := s.brokers.Topology().Validate(); err != nil {
		return nil, err
	}
	if s.scanLimit < 1 {
		return nil, &exitError{exitUsage, fmt.Errorf("--scan-limit %d: want 1 or more", s.scanLimit)}
	}
	raw := cli.AMQPWithRole(s.brokers.AMQPURL, identity.Ops)
	u, err := url.Parse(amqplink.FirstURL(raw)) // every URL of a list has the same user
	if err != nil || u.User == nil {
		return nil, &exitError{exitUsage, fmt.Errorf("--amqp-url / CAFE_AMQP_URL: want amqp://user:password@host:port/ (or run `task setup` so cafe-ops' password can be derived)")}
	}
	conn, err := amqplink.Dial(amqplink.Config{URL: raw, TLS: s.brokers.AMQPTLS})
	if err != nil {
		return nil, fmt.Errorf("cannot reach RabbitMQ at %s as %s (--amqp-url / CAFE_AMQP_URL; start it: bash deploy/brokers.sh): %w", u.Host, u.User.Username(), err)
	}
	return &opsLink{conn: conn, user: u.User.Username()}, nil
}

// filterFlags registers the flags that fill a Filter.
func filterFlags(cmd *cobra.Command, f *deadletter.Filter, withIDs bool) {
	fl := cmd.Flags()
	if withIDs {
		fl.StringArrayVar(&f.IDs, "id", nil, "message id of a dead letter (repeatable)")
	}
	fl.StringVar(&f.Reason, "reason", "", "only letters that died for this reason (rejected, delivery_limit, expired, maxlen)")
	fl.StringVar(&f.Client, "client", "", "only commands of this client (pattern: app-*)")
	fl.StringVar(&f.Device, "device", "", "only commands for this device (pattern: lamp-*)")
	fl.StringVar(&f.Method, "method", "", "only commands with this JSON-RPC method (pattern)")
	fl.DurationVar(&f.OlderThan, "older-than", 0, "only letters that died longer ago than this (30m, 2h)")
	fl.DurationVar(&f.NewerThan, "newer-than", 0, "only letters that died less long ago than this")
}

func checkFilter(f deadletter.Filter) error {
	if err := f.Validate(); err != nil {
		return &exitError{exitUsage, err}
	}
	return nil
}

// requireChoice refuses a replay or purge of everything unless --all says so.
func requireChoice(f deadletter.Filter, all bool, verb string) error {
	if f.Empty() && !all {
		return &exitError{exitUsage, errors.New("choose what to " + verb + ": --id, --reason, --client, --device, --method, --older-than, --newer-than, or --all")}
	}
	return checkFilter(f)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
