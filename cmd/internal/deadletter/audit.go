package deadletter

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"
)

// AuditRecord is one line of the audit file: who changed the dead letters,
// when, with what filter, and how many it touched.
type AuditRecord struct {
	Time     time.Time `json:"time"`
	OSUser   string    `json:"os_user"`  // who ran the command on this machine
	Identity string    `json:"identity"` // the broker login it acted as
	Action   string    `json:"action"`   // replay, purge
	Prefix   string    `json:"prefix"`   // the pipeline (AMQP prefix)
	Filter   string    `json:"filter"`   // the filter, as flags
	DryRun   bool      `json:"dry_run,omitempty"`
	Done     int       `json:"done"`    // replayed or removed
	Refused  int       `json:"refused"` // chosen but refused
	Error    string    `json:"error,omitempty"`
}

// OSUser is the name of the user running this process.
func OSUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}

// Audit appends r as one JSON line to file (created 0600, its folder
// 0700) and logs it. Lines are appended with one write each, so
// concurrent tools do not interleave them.
func Audit(file string, log *slog.Logger, r AuditRecord) error {
	log.Info("dead letters "+r.Action, "os_user", r.OSUser, "identity", r.Identity, "prefix", r.Prefix,
		"filter", r.Filter, "dry_run", r.DryRun, "done", r.Done, "refused", r.Refused, "error", r.Error)
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("audit file %s (CAFE_AUDIT_FILE): %w", file, err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit file %s (CAFE_AUDIT_FILE): %w", file, err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit file %s: %w", file, err)
	}
	return f.Close()
}
