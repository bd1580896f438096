package records_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/records"
)

// PendingAmong matches each pair on its app and its id: two apps with the
// same id see only their own command; done and refused commands are not
// pending; each pending pair comes once, also when asked twice; the pairs
// of one app (Pending's query) answer the same.
func TestPendingAmongKeepsAppsApart(t *testing.T) {
	_, s := migratedStore(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	of := func(client string, k contracts.EventKind, cmd string, n int) records.Event {
		e := event(k, cmd, n, t0)
		e.ClientID = client
		if k == contracts.EventAccepted {
			e.Accepted = t0
		}
		return e
	}
	a7, b7, b8, a9 := contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID()
	if err := s.Write(ctx, []records.Event{
		of("app-1", contracts.EventAccepted, a7, 7),                                          // pending
		of("app-2", contracts.EventAccepted, b7, 7), of("app-2", contracts.EventDone, b7, 7), // done
		of("app-2", contracts.EventAccepted, b8, 8),                                             // pending
		of("app-1", contracts.EventAccepted, a9, 9), of("app-1", contracts.EventRefused, a9, 9), // refused
	}); err != nil {
		t.Fatal(err)
	}
	key := func(p records.ClientMsg) string { return p.Client + "/" + p.MsgID }
	for _, tc := range []struct {
		name  string
		pairs []records.ClientMsg
		want  []string
	}{
		{"two apps", []records.ClientMsg{{"app-1", "7"}, {"app-2", "7"}, {"app-1", "8"}, {"app-2", "8"}, {"app-1", "9"}, {"app-1", "7"}, {"app-3", "7"}},
			[]string{"app-1/7", "app-2/8"}},
		{"one app", []records.ClientMsg{{"app-2", "7"}, {"app-2", "8"}, {"app-2", "9"}}, []string{"app-2/8"}},
		{"none pending", []records.ClientMsg{{"app-1", "9"}, {"app-2", "7"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending, err := s.PendingAmong(ctx, tc.pairs)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pending {
				got = append(got, key(p))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pending %s, want %s", strings.Join(got, " "), strings.Join(tc.want, " "))
			}
		})
	}
}
