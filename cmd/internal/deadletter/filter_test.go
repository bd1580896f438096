package deadletter_test

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cafe/cmd/internal/deadletter"
)

func TestFilterValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    deadletter.Filter
		want string // in the error; "" for none
	}{
		{"zero", deadletter.Filter{}, ""},
		{"full", deadletter.Filter{Reason: "rejected", Client: "app-*", Device: "lamp-?", Method: "on", OlderThan: time.Minute, NewerThan: time.Hour, Limit: 5}, ""},
		{"unknown reason", deadletter.Filter{Reason: "tired"}, "--reason"},
		{"bad pattern", deadletter.Filter{Device: "lamp-["}, "--device"},
		{"negative age", deadletter.Filter{OlderThan: -time.Second}, "positive duration"},
		{"empty window", deadletter.Filter{OlderThan: time.Hour, NewerThan: time.Minute}, "matches nothing"},
		{"negative limit", deadletter.Filter{Limit: -1}, "--limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestFilterString(t *testing.T) {
	if got := (deadletter.Filter{}).String(); got != "(all)" {
		t.Errorf("zero filter says %q", got)
	}
	got := deadletter.Filter{Reason: "rejected", Device: "lamp-*", OlderThan: time.Hour}.String()
	if got != "--reason=rejected --device=lamp-* --older-than=1h0m0s" {
		t.Errorf("got %q", got)
	}
}

func TestAuditAppendsLines(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	log := slog.New(slog.DiscardHandler)
	for _, r := range []deadletter.AuditRecord{
		{Time: time.Now(), OSUser: "ann", Identity: "cafe-ops", Action: "replay", Filter: "--reason=rejected", Done: 3, Refused: 1},
		{Time: time.Now(), OSUser: "ann", Identity: "cafe-ops", Action: "purge", Filter: "(all)", Done: 2},
	} {
		if err := deadletter.Audit(file, log, r); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var second deadletter.AuditRecord
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &second) != nil || second.Action != "purge" || second.Done != 2 || second.OSUser != "ann" {
		t.Fatalf("audit file:\n%s", data)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", fi.Mode().Perm())
	}
}
