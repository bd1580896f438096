package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/deadletter"
)

func deadListCommand(s *deadSettings) *cobra.Command {
	var f deadletter.Filter
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters, oldest first, without removing or reordering them",
		Example: `  cafe dead list
  cafe dead list --reason delivery_limit --device 'lamp-*' --newer-than 1h
  cafe dead list --limit 500 --json | jq .reason`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFilter(f); err != nil {
				return err
			}
			link, err := s.dial(cmd)
			if err != nil {
				return err
			}
			defer link.conn.Close()
			letters, err := deadletter.List(cmd.Context(), link.conn, s.brokers.Topology(), f, s.scanLimit)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSONLines(cmd.OutOrStdout(), letters)
			}
			return printLetters(cmd.OutOrStdout(), letters, s.brokers.Topology().DeadQueue())
		},
	}
	filterFlags(cmd, &f, false)
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "show at most this many (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line, with headers, death history and body")
	return cmd
}

func printJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for _, it := range items {
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

func printLetters(w io.Writer, letters []deadletter.Letter, queue string) error {
	if len(letters) == 0 {
		_, err := fmt.Fprintf(w, "no dead letters in %s match\n", queue)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tFROM\tREASON\tDIED\tCLIENT\tDEVICE\tMETHOD\tID\tBODY")
	for _, l := range letters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.MessageID, l.Queue, l.Reason,
			l.DiedAt.Format(time.DateTime), dash(l.ClientID), dash(l.DeviceID), dash(l.Method), dash(l.MsgID), oneLine(l.Body, 60))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d shown; details: cafe dead show MESSAGE_ID; replay: cafe dead replay --id MESSAGE_ID [--extend 30s]\n", len(letters))
	return err
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

func deadShowCommand(s *deadSettings) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "show MESSAGE_ID",
		Short:   "Show one dead letter: its headers, reason, death history and whole body",
		Example: "  cafe dead show 3f2a...\n  cafe dead show 3f2a... --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			link, err := s.dial(cmd)
			if err != nil {
				return err
			}
			defer link.conn.Close()
			l, body, err := deadletter.Show(cmd.Context(), link.conn, s.brokers.Topology(), args[0], s.scanLimit)
			if err != nil {
				return err
			}
			l.Body = string(body)
			if asJSON {
				return printJSONLines(cmd.OutOrStdout(), []deadletter.Letter{l})
			}
			return printLetter(cmd.OutOrStdout(), l)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "as one JSON object")
	return cmd
}

func printLetter(w io.Writer, l deadletter.Letter) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "message id\t%s\nreason\t%s (%d times), %s\nfrom\t%s (exchange %s, key %s)\n",
		l.MessageID, l.Reason, l.Count, l.DiedAt.Format(time.RFC3339), l.Queue, l.Exchange, l.RoutingKey)
	fmt.Fprintf(tw, "client\t%s\ndevice\t%s\nmethod\t%s\nmsg id\t%s\nreplayed\t%d times\n",
		dash(l.ClientID), dash(l.DeviceID), dash(l.Method), dash(l.MsgID), l.ReplayCount)
	if !l.Deadline.IsZero() {
		fmt.Fprintf(tw, "deadline\t%s (%s)\n", l.Deadline.Format(time.RFC3339), relative(l.Deadline))
	}
	fmt.Fprintln(tw, "\ndeath history (most recent first):")
	for _, d := range l.Deaths {
		fmt.Fprintf(tw, "  %s\t%s\t%d×\tin %s\n", d.Time.Format(time.RFC3339), d.Reason, d.Count, d.Queue)
	}
	fmt.Fprintln(tw, "\nheaders:")
	keys := make([]string, 0, len(l.Headers))
	for k := range l.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "  %s\t%v\n", k, l.Headers[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\nbody (%d bytes):\n%s\n", l.BodyBytes, l.Body)
	return err
}

func relative(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}
