package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"golang.org/x/time/rate"

	"cafe/cmd/internal/deadletter"
	"cafe/contracts/registry"
)

type replayFlags struct {
	f      deadletter.Filter
	all    bool
	dryRun bool
	rate   string
	extend time.Duration
}

func deadReplayCommand(s *deadSettings) *cobra.Command {
	var r replayFlags
	cmd := &cobra.Command{
		Use:   "replay",
		Short: "Send chosen dead letters back where they came from, re-checked, paced and audited",
		Long: `replay republishes chosen dead letters, as cafe-ops, to the exchange they died
from, with publisher confirms, and removes each from the dead-letter queue only
once its copy is confirmed. Each letter is re-checked first, against the
registry as it is now: its client still exists, its device is still
registered, the client may still command it; and its deadline is still ahead
(or --extend gives it a new one). A refused letter stays, and replay says why.
A copy carries cafe-replay-count (one more than the letter's).

--dry-run says what would be replayed and what refused, and changes nothing.
--rate paces the copies (e.g. 50/s). On a terminal a progress bar shows long
runs. Every run appends an audit line to CAFE_AUDIT_FILE.`,
		Example: `  cafe dead replay --id 3f2a...                       # one
  cafe dead replay --reason delivery_limit --extend 1m --dry-run
  cafe dead replay --device 'lamp-*' --newer-than 1h --rate 20/s --extend 30s
  cafe dead replay --all --extend 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return s.replay(cmd, r) },
	}
	filterFlags(cmd, &r.f, true)
	cmd.Flags().IntVar(&r.f.Limit, "limit", 0, "replay (or refuse) at most this many (0: no limit)")
	cmd.Flags().BoolVar(&r.all, "all", false, "replay every dead letter (when no filter is given)")
	cmd.Flags().BoolVar(&r.dryRun, "dry-run", false, "say what would be replayed and refused; change nothing")
	cmd.Flags().StringVar(&r.rate, "rate", "", "at most this many copies a second: N/s, N/m or N (default: as fast as confirms come)")
	cmd.Flags().DurationVar(&r.extend, "extend", 0, "give replayed commands a new deadline this far from now")
	return cmd
}

// parseRate reads "N/s", "N/m" or "N" (per second), N above 0.
func parseRate(s string) (*rate.Limiter, error) {
	if s == "" {
		return nil, nil
	}
	num, per := s, time.Second
	if n, unit, ok := strings.Cut(s, "/"); ok {
		num = n
		switch unit {
		case "s":
		case "m", "min":
			per = time.Minute
		default:
			return nil, fmt.Errorf("--rate %q: want N/s or N/m", s)
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 || n > 1e6 {
		return nil, fmt.Errorf("--rate %q: want a number above 0 (and at most 1e6), as N/s or N/m", s)
	}
	return rate.NewLimiter(rate.Limit(n/per.Seconds()), 1), nil
}

func (s *deadSettings) replay(cmd *cobra.Command, r replayFlags) error {
	if err := requireChoice(r.f, r.all, "replay"); err != nil {
		return err
	}
	lim, err := parseRate(r.rate)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if r.extend < 0 {
		return &exitError{exitUsage, fmt.Errorf("--extend %v: want a positive duration (30s, 5m)", r.extend)}
	}
	link, err := s.dial(cmd)
	if err != nil {
		return err
	}
	defer link.conn.Close()
	reg, err := registry.Load(s.registryFile)
	if err != nil {
		return fmt.Errorf("replay re-checks every letter against the registry: %w", err)
	}
	out := cmd.OutOrStdout()
	bar := s.progress(cmd, link, r)
	opts := deadletter.ReplayOptions{ScanLimit: s.scanLimit, DryRun: r.dryRun, Extend: r.extend, Limiter: lim,
		Check: deadletter.RegistryCheck(reg), User: link.user, Progress: replayPrinter(out, bar, r.dryRun)}
	rep, err := deadletter.Replay(cmd.Context(), link.conn, s.brokers.Topology(), r.f, opts)
	bar.finish()
	verb := "replayed"
	if r.dryRun {
		verb = "would be replayed"
	}
	fmt.Fprintf(out, "%d %s, %d refused (they stay)\n", rep.Done, verb, rep.Refused)
	return s.audit(cmd, link, "replay", r.f, r.dryRun, rep, err)
}

func replayPrinter(out io.Writer, bar *bar, dry bool) func(deadletter.Outcome) {
	return func(o deadletter.Outcome) {
		bar.add()
		switch {
		case o.Refused != nil:
			fmt.Fprintf(out, "refused  %s: %v\n", o.Letter.MessageID, o.Refused)
		case dry:
			fmt.Fprintf(out, "would replay %s to %s\n", o.Letter.MessageID, o.Letter.Exchange)
		case bar.pb != nil: // the bar shows them; refusals are still listed
		default:
			fmt.Fprintf(out, "replayed %s to %s\n", o.Letter.MessageID, o.Letter.Exchange)
		}
	}
}

// audit records a replay or purge, and returns err (the command's own).
func (s *deadSettings) audit(cmd *cobra.Command, link *opsLink, action string, f deadletter.Filter, dry bool, rep deadletter.Report, err error) error {
	rec := deadletter.AuditRecord{Time: time.Now().UTC(), OSUser: deadletter.OSUser(), Identity: link.user, Action: action,
		Prefix: s.brokers.Topology().Prefix, Filter: f.String(), DryRun: dry, Done: rep.Done, Refused: rep.Refused}
	if err != nil {
		rec.Error = err.Error()
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	if aerr := deadletter.Audit(s.auditFile, log, rec); aerr != nil && err == nil {
		return fmt.Errorf("%s done, but not recorded: %w", action, aerr)
	}
	return err
}

// bar is a progress bar on a terminal for long runs; a no-op elsewhere.
type bar struct{ pb *progressbar.ProgressBar }

// progressFrom is how many chosen letters make a run long.
const progressFrom = 20

func (s *deadSettings) progress(cmd *cobra.Command, link *opsLink, r replayFlags) *bar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return &bar{}
	}
	chosen, err := deadletter.List(cmd.Context(), link.conn, s.brokers.Topology(), r.f, s.scanLimit)
	if err != nil || len(chosen) < progressFrom {
		return &bar{}
	}
	return &bar{progressbar.NewOptions(len(chosen), progressbar.OptionSetWriter(f), progressbar.OptionSetDescription("replaying"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())}
}

func (b *bar) add() {
	if b.pb != nil {
		_ = b.pb.Add(1)
	}
}

func (b *bar) finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}
