package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"cafe/cmd/internal/status"
)

func printStatus(w io.Writer, s status.Snapshot) error {
	fmt.Fprintf(w, "cafe status  prefix %s  %s\n\n", s.Prefix, s.Time.Format(time.DateTime+" MST"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tMESSAGES\tREADY\tUNACKED\tCONSUMERS\tIN/s\tOUT/s\t")
	for _, q := range s.Queues {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%.1f\t\n", q.Name, q.Messages, q.Ready, q.Unacked, q.Consumers, q.RateIn, q.RateOut)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "baristas\t%s\n", role(s.Baristas, s.Queues != nil))
	fmt.Fprintf(tw, "callers\t%s\n", role(s.Callers, s.Queues != nil))
	fmt.Fprintf(tw, "devices\t%s\n", devicesLine(s.Devices))
	fmt.Fprintf(tw, "breakers\t%s\n", breakersLine(s.Breakers))
	fmt.Fprintf(tw, "dead letters\t%s\n", deadLine(s.Dead))
	fmt.Fprintf(tw, "oldest waiting\t%s\n", oldestLine(s.Oldest))
	fmt.Fprintf(tw, "ledger\t%s\n", ledgerLine(s.Ledger))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Errors) > 0 {
		fmt.Fprintln(w, "\nnot read:")
		for _, e := range s.Errors {
			fmt.Fprintf(w, "  %s: %s\n", e.Source, e.Err)
		}
	}
	return nil
}

func role(r status.Role, known bool) string {
	line := "? consuming"
	if known {
		line = fmt.Sprintf("%d consuming", r.Consumers)
	}
	if r.Endpoints > 0 {
		line += fmt.Sprintf(" (metrics: %d of %d endpoints up)", r.Up, r.Endpoints)
	}
	return line
}

func devicesLine(d *status.Devices) string {
	if d == nil {
		return "?"
	}
	return fmt.Sprintf("%d online, of %d with presence (%s)", d.Online, d.Known, d.Source)
}

func breakersLine(c *status.Count) string {
	if c == nil {
		return "? (give --barista-metrics)"
	}
	return fmt.Sprintf("%d open (%s)", c.N, c.Source)
}

func deadLine(d *status.Dead) string {
	if d == nil {
		return "?"
	}
	if d.Total == 0 {
		return "0"
	}
	var parts []string
	for r, n := range d.ByReason {
		parts = append(parts, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(parts)
	line := fmt.Sprintf("%d: %s", d.Total, strings.Join(parts, ", "))
	if d.Partial {
		line += " (by reason: the first 10000 only)"
	}
	return line + "  (cafe dead list)"
}

func oldestLine(o *status.Oldest) string {
	switch {
	case o == nil:
		return "?"
	case !o.Known:
		return o.Source
	}
	return fmt.Sprintf("%v (%s)", o.Age, o.Source)
}

func ledgerLine(l *status.Ledger) string {
	if l == nil {
		return "?"
	}
	return fmt.Sprintf("%d events waiting, %d ledgers, lag %v (%s)", l.Waiting, l.Ledgers, l.Lag, l.Source)
}
