package deadletter

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"time"
)

// Filter chooses dead letters. Every field set must match (and); a zero
// Filter matches every letter. Client, Device and Method are path.Match
// patterns ("lamp-*"); ages count from when the letter died.
type Filter struct {
	IDs       []string      // by message id (command id); any of them
	Reason    string        // rejected, delivery_limit, expired, maxlen
	Client    string        // the app that sent the command
	Device    string        // the device it was for
	Method    string        // its JSON-RPC method
	OlderThan time.Duration // died more than this long ago
	NewerThan time.Duration // died less than this long ago
	Limit     int           // at most this many letters; 0: no limit
}

// Reasons RabbitMQ gives in x-death.
var Reasons = []string{"rejected", "delivery_limit", "expired", "maxlen"}

// Validate reports what is wrong with f, naming the flag.
func (f Filter) Validate() error {
	var errs []error
	if f.Reason != "" && !slices.Contains(Reasons, f.Reason) {
		errs = append(errs, fmt.Errorf("--reason %q: want one of %v", f.Reason, Reasons))
	}
	for flag, p := range map[string]string{"--client": f.Client, "--device": f.Device, "--method": f.Method} {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: not a pattern (* and ? are wildcards): %w", flag, p, err))
		}
	}
	if f.OlderThan < 0 || f.NewerThan < 0 {
		errs = append(errs, errors.New("--older-than and --newer-than take a positive duration (30m, 2h)"))
	}
	if f.OlderThan > 0 && f.NewerThan > 0 && f.NewerThan <= f.OlderThan {
		errs = append(errs, fmt.Errorf("--newer-than %v with --older-than %v matches nothing: want newer-than above older-than", f.NewerThan, f.OlderThan))
	}
	if f.Limit < 0 {
		errs = append(errs, fmt.Errorf("--limit %d: want 1 or more (0: no limit)", f.Limit))
	}
	return errors.Join(errs...)
}

// Empty reports whether f chooses by nothing (so would match every letter).
func (f Filter) Empty() bool {
	return len(f.IDs) == 0 && f.Reason == "" && f.Client == "" && f.Device == "" && f.Method == "" &&
		f.OlderThan == 0 && f.NewerThan == 0
}

// Match reports whether l is chosen by f at time now.
func (f Filter) Match(l Letter, now time.Time) bool {
	age := now.Sub(l.DiedAt)
	switch {
	case len(f.IDs) > 0 && !slices.Contains(f.IDs, l.MessageID),
		f.Reason != "" && l.Reason != f.Reason,
		!glob(f.Client, l.ClientID), !glob(f.Device, l.DeviceID), !glob(f.Method, l.Method),
		f.OlderThan > 0 && age <= f.OlderThan,
		f.NewerThan > 0 && age >= f.NewerThan:
		return false
	}
	return true
}

// String says what f chooses, for the audit log.
func (f Filter) String() string {
	s := ""
	add := func(name string, v any, set bool) {
		if set {
			s += fmt.Sprintf(" --%s=%v", name, v)
		}
	}
	for _, id := range f.IDs {
		add("id", id, true)
	}
	add("reason", f.Reason, f.Reason != "")
	add("client", f.Client, f.Client != "")
	add("device", f.Device, f.Device != "")
	add("method", f.Method, f.Method != "")
	add("older-than", f.OlderThan, f.OlderThan > 0)
	add("newer-than", f.NewerThan, f.NewerThan > 0)
	add("limit", f.Limit, f.Limit > 0)
	if s == "" {
		return "(all)"
	}
	return s[1:]
}

func glob(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}
