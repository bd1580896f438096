package devicesim

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
)

// Counters is what a device (or the fleet, summed) did. Every message on a
// device's commands topic is received and then counted as exactly one of
// executed, failures_injected, duplicates, invalid or dropped:
//
//	received = executed + failures_injected + duplicates + invalid + dropped
//
// The JSON names are part of the simulator's interface (tests read them).
type Counters struct {
	Received         uint64 `json:"received"`          // messages on the device's commands topics
	Executed         uint64 `json:"executed"`          // valid requests run for their first delivery (incl. notifications and "never")
	FailuresInjected uint64 `json:"failures_injected"` // requests answered with the simulated failure because of the error rate, not run
	Duplicates       uint64 `json:"duplicates"`        // repeated keys: not run again, answered from memory
	Invalid          uint64 `json:"invalid"`           // not a valid request (not JSON, not a request, over 1 MiB): answered -32700/-32600 with id null
	Dropped          uint64 `json:"dropped"`           // arrived while the device was going offline; ignored
	Notifications    uint64 `json:"notifications"`     // executed requests without an id (never answered)
	RepliesSent      uint64 `json:"replies_sent"`      // replies the broker acknowledged, duplicates included
	ErrorsReplied    uint64 `json:"errors_replied"`    // of replies_sent, those carrying an error object (any code)
	ReplyFailures    uint64 `json:"reply_failures"`    // replies the broker did not acknowledge
	Abandoned        uint64 `json:"abandoned"`         // replies, and repeats waiting for one, cut short by going offline
	OddTopics        uint64 `json:"odd_topics"`        // commands on a topic other than devices/{id}/commands/{route}/{key}; still handled
	NoReplyTopic     uint64 `json:"no_reply_topic"`    // replies that had no topic to go to (command on devices/{id}/commands exactly)
}

func (c *Counters) add(o Counters) {
	c.Received += o.Received
	c.Executed += o.Executed
	c.FailuresInjected += o.FailuresInjected
	c.Duplicates += o.Duplicates
	c.Invalid += o.Invalid
	c.Dropped += o.Dropped
	c.Notifications += o.Notifications
	c.RepliesSent += o.RepliesSent
	c.ErrorsReplied += o.ErrorsReplied
	c.ReplyFailures += o.ReplyFailures
	c.Abandoned += o.Abandoned
	c.OddTopics += o.OddTopics
	c.NoReplyTopic += o.NoReplyTopic
}

// counters is the live, lock-free form of Counters.
type counters struct {
	received, executed, failuresInjected, duplicates, invalid, dropped, notifications,
	repliesSent, errorsReplied, replyFailures, abandoned, oddTopics, noReplyTopic atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Received:         c.received.Load(),
		Executed:         c.executed.Load(),
		FailuresInjected: c.failuresInjected.Load(),
		Duplicates:       c.duplicates.Load(),
		Invalid:          c.invalid.Load(),
		Dropped:          c.dropped.Load(),
		Notifications:    c.notifications.Load(),
		RepliesSent:      c.repliesSent.Load(),
		ErrorsReplied:    c.errorsReplied.Load(),
		ReplyFailures:    c.replyFailures.Load(),
		Abandoned:        c.abandoned.Load(),
		OddTopics:        c.oddTopics.Load(),
		NoReplyTopic:     c.noReplyTopic.Load(),
	}
}

// DeviceStats is one device's line in Stats.
type DeviceStats struct {
	ID     string `json:"id"`
	Online bool   `json:"online"` // connected and announced
	Counters
}

// Stats is a snapshot of a fleet. Its JSON form is what --stats-file holds.
type Stats struct {
	Seed    int64         `json:"seed"`   // reproduces the run's random choices with --seed
	Online  int           `json:"online"` // devices connected and announced
	Totals  Counters      `json:"totals"`
	Devices []DeviceStats `json:"devices"` // in id order of the pattern
}

// tableRows is how many devices the summary table lists one by one.
const tableRows = 20

// WriteTable writes a readable summary: one row per device (the first
// tableRows of them) and the totals, then the rarer counters when not zero.
func (s Stats) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "device\treceived\texecuted\tinjected\tduplicates\tinvalid\tnotifications\treplies\terrors\t")
	row := func(name string, c Counters) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", name, c.Received, c.Executed, c.FailuresInjected,
			c.Duplicates, c.Invalid, c.Notifications, c.RepliesSent, c.ErrorsReplied)
	}
	for i, d := range s.Devices {
		if i == tableRows {
			fmt.Fprintf(tw, "(%d more)\t\t\t\t\t\t\t\t\t\n", len(s.Devices)-tableRows)
			break
		}
		row(d.ID, d.Counters)
	}
	row("total", s.Totals)
	if err := tw.Flush(); err != nil {
		return err
	}
	t := s.Totals
	_, err := fmt.Fprintf(w, "devices %d, online %d, seed %d; dropped %d, abandoned %d, reply failures %d, odd topics %d, no reply topic %d\n",
		len(s.Devices), s.Online, s.Seed, t.Dropped, t.Abandoned, t.ReplyFailures, t.OddTopics, t.NoReplyTopic)
	return err
}

// WriteFile writes s as indented JSON to path, atomically: a reader sees the
// old file or the whole new one.
func (s Stats) WriteFile(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".devicesim-stats-*")
	if err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write stats: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write stats: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	return nil
}
