package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"cafe/cmd/internal/deadletter"
)

const exitNotConfirmed = 1

func deadPurgeCommand(s *deadSettings) *cobra.Command {
	var (
		f   deadletter.Filter
		all bool
		yes bool
	)
	cmd := &cobra.Command{
		Use:   "purge",
		Short: "Remove chosen dead letters for good, after confirmation",
		Long: `purge shows how many dead letters the filters choose, asks for confirmation
(unless --yes), removes exactly those (letters that arrived meanwhile stay),
says what it removed, and appends an audit line to CAFE_AUDIT_FILE.`,
		Example: `  cafe dead purge --reason rejected --older-than 168h
  cafe dead purge --client app-gone --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireChoice(f, all, "purge"); err != nil {
				return err
			}
			return s.purge(cmd, f, yes)
		},
	}
	filterFlags(cmd, &f, true)
	cmd.Flags().IntVar(&f.Limit, "limit", 0, "remove at most this many (0: no limit)")
	cmd.Flags().BoolVar(&all, "all", false, "purge every dead letter (when no filter is given)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	return cmd
}

func (s *deadSettings) purge(cmd *cobra.Command, f deadletter.Filter, yes bool) error {
	link, err := s.dial(cmd)
	if err != nil {
		return err
	}
	defer link.conn.Close()
	top, out := s.brokers.Topology(), cmd.OutOrStdout()
	chosen, err := deadletter.List(cmd.Context(), link.conn, top, f, s.scanLimit)
	if err != nil {
		return err
	}
	if len(chosen) == 0 {
		fmt.Fprintf(out, "no dead letters in %s match; nothing removed\n", top.DeadQueue())
		return nil
	}
	fmt.Fprintf(out, "%d dead letters in %s match (%s).\n", len(chosen), top.DeadQueue(), byReason(chosen))
	if !yes && !confirm(cmd.InOrStdin(), out, "Remove them for good? [y/N] ") {
		return &exitError{exitNotConfirmed, errors.New("not confirmed: nothing removed (--yes skips the question)")}
	}
	exact := deadletter.Filter{IDs: idsOf(chosen)} // what was shown, nothing that arrived since
	removed, err := deadletter.Purge(cmd.Context(), link.conn, top, exact, s.scanLimit)
	for _, l := range removed {
		fmt.Fprintf(out, "removed %s (%s, client %s, device %s)\n", l.MessageID, l.Reason, dash(l.ClientID), dash(l.DeviceID))
	}
	fmt.Fprintf(out, "%d removed\n", len(removed))
	return s.audit(cmd, link, "purge", f, false, deadletter.Report{Done: len(removed)}, err)
}

func confirm(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprint(out, question)
	answer, _ := bufio.NewReader(in).ReadString('\n')
	answer = strings.ToLower(strings.TrimSpace(answer))
	return answer == "y" || answer == "yes"
}

func idsOf(letters []deadletter.Letter) []string {
	out := make([]string, len(letters))
	for i, l := range letters {
		out[i] = l.MessageID
	}
	return out
}

func byReason(letters []deadletter.Letter) string {
	n := map[string]int{}
	for _, l := range letters {
		n[dash(l.Reason)]++
	}
	var parts []string
	for r, c := range n {
		parts = append(parts, fmt.Sprintf("%s: %d", r, c))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
