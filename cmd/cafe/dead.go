package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"cafe/cmd/internal/cli"
	"cafe/cmd/internal/deadletter"
	"cafe/contracts/amqplink"
)

func deadCommand() *cobra.Command {
	var brokers cli.Brokers
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "Inspect and replay dead letters (commands and results the pipeline put aside)",
		Long: `dead works on the dead-letter queue ({prefix}.dead). A command lands there when
it is not a valid command (reason "rejected") or was delivered too often, e.g.
because it kept crashing workers (reason "delivery_limit"); a result, when it
cannot be delivered to any app. Nothing in it expires.`,
	}
	f := cli.On(cmd.PersistentFlags())
	brokers.RegisterAMQP(f)
	cmd.AddCommand(deadListCommand(&brokers), deadReplayCommand(&brokers))
	return cmd
}

func dial(cmd *cobra.Command, b *cli.Brokers) (*amqp.Connection, error) {
	if err := cli.ApplyEnv(cmd.Flags()); err != nil {
		return nil, err
	}
	if err := b.Topology().Validate(); err != nil {
		return nil, err
	}
	conn, err := amqplink.Dial(amqplink.Config{URL: b.AMQPURL, TLS: b.AMQPTLS})
	if err != nil {
		return nil, fmt.Errorf("cannot reach RabbitMQ (--amqp-url / CAFE_AMQP_URL): %w", err)
	}
	return conn, nil
}

func deadListCommand(b *cli.Brokers) *cobra.Command {
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List dead letters, oldest first, without removing them",
		Example: "  cafe dead list\n  cafe dead list --limit 500 --json | jq .reason",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := dial(cmd, b)
			if err != nil {
				return err
			}
			defer conn.Close()
			letters, err := deadletter.List(cmd.Context(), conn, b.Topology(), limit)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				for _, l := range letters {
					if err := enc.Encode(l); err != nil {
						return err
					}
				}
				return nil
			}
			return printLetters(cmd.OutOrStdout(), letters, b.Topology().DeadQueue())
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most this many")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line, with the body")
	return cmd
}

func printLetters(w io.Writer, letters []deadletter.Letter, queue string) error {
	if len(letters) == 0 {
		_, err := fmt.Fprintf(w, "no dead letters in %s\n", queue)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tFROM\tREASON\tDIED\tCLIENT\tDEVICE\tID\tBODY")
	for _, l := range letters {
		body := strings.Join(strings.Fields(l.Body), " ")
		if len(body) > 60 {
			body = body[:60] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.MessageID, l.Queue, l.Reason,
			l.DiedAt.Format(time.DateTime), dash(l.ClientID), dash(l.DeviceID), dash(l.MsgID), body)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d shown; replay with: cafe dead replay --id MESSAGE_ID [--extend 30s]\n", len(letters))
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func deadReplayCommand(b *cli.Brokers) *cobra.Command {
	var (
		ids    []string
		all    bool
		reason string
		limit  int
		extend time.Duration
	)
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Send dead letters back where they came from",
		Long: `replay republishes chosen dead letters to the exchange they died from, with
publisher confirms, and removes each from the dead-letter queue only once its
copy is confirmed. A replayed command keeps its deadline unless --extend
gives it a new one (an old deadline makes it end as "command expired").`,
		Example: `  cafe dead replay --id 3f2a...            # one
  cafe dead replay --reason delivery_limit --extend 1m
  cafe dead replay --all --extend 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !all && len(ids) == 0 && reason == "" {
				return &exitError{exitUsage, errors.New("choose what to replay: --id (repeatable), --reason, or --all")}
			}
			conn, err := dial(cmd, b)
			if err != nil {
				return err
			}
			defer conn.Close()
			sel := deadletter.Selector{Reason: reason, IDs: map[string]bool{}}
			for _, id := range ids {
				sel.IDs[id] = true
			}
			out := cmd.OutOrStdout()
			var failed int
			n, err := deadletter.Replay(cmd.Context(), conn, b.Topology(), sel, deadletter.ReplayOptions{
				Limit: limit, Extend: extend,
				Progress: func(l deadletter.Letter, replayed bool, err error) {
					switch {
					case err != nil:
						failed++
						fmt.Fprintf(out, "kept     %s: %v\n", l.MessageID, err)
					case replayed:
						fmt.Fprintf(out, "replayed %s to %s\n", l.MessageID, l.Exchange)
					}
				},
			})
			fmt.Fprintf(out, "%d replayed, %d kept because they could not be\n", n, failed)
			if err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&ids, "id", nil, "message id of a dead letter to replay (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter (up to --limit)")
	cmd.Flags().StringVar(&reason, "reason", "", "replay only dead letters with this reason (rejected, delivery_limit)")
	cmd.Flags().IntVar(&limit, "limit", 10000, "look at no more than this many dead letters")
	cmd.Flags().DurationVar(&extend, "extend", 0, "give replayed commands a new deadline this far from now")
	return cmd
}
