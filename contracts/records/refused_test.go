package records_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"cafe/contracts"
	"cafe/contracts/records"
	"cafe/contracts/records/recordstest"
)

// The ghost of a refused command: RabbitMQ copies a command into the
// events queue even when the commands queue refuses it, so the ledger gets
// its copy (queued) and the cashier's refusal, in either order and, with
// several ledgers, in separate transactions. Either way the command reads
// as refused, without its copy's queued step, and does not hold its id; a
// command refused and then sent after all (a nack from the events queue
// on a cluster) is sent and pending.
func TestRefusedCommandIsNotPending(t *testing.T) {
	_, s := migratedStore(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Minute)
	write := func(evs ...records.Event) {
		t.Helper()
		if err := s.Write(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	accepted := func(cmd string, n int) records.Event {
		e := event(contracts.EventAccepted, cmd, n, t0)
		e.Accepted = t0
		return e
	}
	refused := func(cmd string, n int) records.Event {
		return event(contracts.EventRefused, cmd, n, t0.Add(time.Millisecond))
	}
	copyFirst, refusalFirst, together, onlyRefusal, ranAnyway, refusedThenDone :=
		contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID(), contracts.NewCommandID()
	write(accepted(copyFirst, 1))
	write(refused(copyFirst, 1))
	write(refused(refusalFirst, 2))
	write(accepted(refusalFirst, 2))
	write(accepted(together, 3), refused(together, 3))
	write(refused(onlyRefusal, 4)) // its copy dropped (drop-head), or not written yet
	write(refused(ranAnyway, 5), accepted(ranAnyway, 5))
	write(event(contracts.EventSent, ranAnyway, 5, t0.Add(time.Second)))
	write(event(contracts.EventDone, refusedThenDone, 6, t0.Add(time.Second)), accepted(refusedThenDone, 6))
	write(refused(refusedThenDone, 6)) // after its result: still done
	write(refused(copyFirst, 1))       // a redelivered refusal changes nothing

	pending, err := s.Pending(ctx, "app-1", []string{"1", "2", "3", "4", "5", "6"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pending, []string{"5"}) {
		t.Fatalf("pending %q, want only 5 (refused, then sent after all)", pending)
	}
	for n, want := range map[string]records.Status{"1": records.StatusRefused, "2": records.StatusRefused, "3": records.StatusRefused,
		"4": records.StatusRefused, "5": records.StatusSent, "6": records.StatusDone} {
		c, err := s.Command(ctx, "app-1", n)
		if err != nil {
			t.Fatal(err)
		}
		steps := recordstest.Statuses(c)
		if c.Status != want {
			t.Errorf("id %s: status %s (history %q), want %s", n, c.Status, steps, want)
		}
		if want == records.StatusRefused && (!slices.Equal(steps, []string{"refused"}) || c.Result != nil || !c.DoneAt.IsZero()) {
			t.Errorf("id %s: refused with history %q, result %s, done at %v; want the refusal alone, no result", n, steps, c.Result, c.DoneAt)
		}
	}
	c, _ := s.Command(ctx, "app-1", "5")
	if steps := len(c.History); steps != 3 {
		t.Errorf("refused, then sent: %d steps, want queued, refused, sent", steps)
	}

	// The app sends id 1 again, and it is queued: that is the command its
	// id names now, pending; the refused one has no result to list.
	again := contracts.NewCommandID()
	a := accepted(again, 1)
	a.Accepted, a.At = t0.Add(time.Second), t0.Add(time.Second)
	write(a)
	if c, _ := s.Command(ctx, "app-1", "1"); c.CommandID != again || c.Status != records.StatusQueued {
		t.Errorf("id 1 sent again: record of %s %s, want the new command %s queued", c.CommandID, c.Status, again)
	}
	if pending, _ := s.Pending(ctx, "app-1", []string{"1"}); !slices.Equal(pending, []string{"1"}) {
		t.Errorf("id 1 sent again: pending %q, want it pending", pending)
	}
	results, err := s.Results(ctx, "app-1", 0, time.Time{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].MsgID != "6" {
		t.Errorf("results %+v, want only id 6's", results)
	}
}
