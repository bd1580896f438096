package contracts_test

import (
	"testing"
	"time"

	"cafe/contracts"
)

// ResultHeaders, built from a command's headers, parse back to what
// ResultMeta.Headers says, and carry nothing else of the command: its
// HeaderMeta value itself and the outcome.
func TestResultHeadersFromTheCommand(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	cmd := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"a 7"`,
		Deadline: now.Add(time.Minute), AcceptedAt: now}
	h := cmd.Headers()
	h["x-delivery-count"] = int64(2) // added by RabbitMQ on a redelivery
	want := contracts.ResultMeta{CommandID: cmd.CommandID, ClientID: cmd.ClientID, DeviceID: cmd.DeviceID, MsgID: cmd.MsgID,
		AcceptedAt: cmd.AcceptedAt, Outcome: contracts.OutcomeTimeout}
	got := contracts.ResultHeaders(h, contracts.OutcomeTimeout)
	if len(got) != 2 || got[contracts.HeaderMeta] != h[contracts.HeaderMeta] {
		t.Fatalf("ResultHeaders = %v, want the command's %s and %s only", got, contracts.HeaderMeta, contracts.HeaderOutcome)
	}
	for name, headers := range map[string]map[string]any{"ResultHeaders": got, "ResultMeta.Headers": want.Headers()} {
		parsed, err := contracts.ParseResultMeta(cmd.CommandID, headers)
		if err != nil || parsed != want {
			t.Errorf("%s parsed back: %+v, %v; want %+v", name, parsed, err, want)
		}
	}
	one := cmd
	one.MsgID = "" // a one-way command
	if m, err := contracts.ParseResultMeta(cmd.CommandID, contracts.ResultHeaders(one.Headers(), contracts.OutcomeSent)); err != nil || m.MsgID != "" {
		t.Errorf("result of a one-way command: %+v, %v; want no msg id", m, err)
	}
}

// SetDeadline moves a command's deadline, in either header form, and
// leaves the rest as it was.
func TestSetDeadline(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	cmd := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", MsgID: "7", Deadline: now, AcceptedAt: now}
	later := now.Add(time.Hour)
	h := cmd.Headers()
	if !contracts.SetDeadline(h, later) {
		t.Fatal("SetDeadline found no deadline")
	}
	got, err := contracts.ParseCommandMeta(cmd.CommandID, h)
	want := cmd
	want.Deadline = later
	if err != nil || got != want {
		t.Fatalf("after SetDeadline: %+v, %v; want %+v", got, err, want)
	}
	if contracts.SetDeadline(contracts.ResultMeta{ClientID: "app-1"}.Headers(), later) {
		t.Error("SetDeadline changed a result that has no deadline")
	}
}

func BenchmarkResultHeaders(b *testing.B) {
	now := time.Now()
	h := contracts.CommandMeta{ClientID: "app-1", DeviceID: "lamp-1", MsgID: "7", Deadline: now, AcceptedAt: now}.Headers()
	m := contracts.ResultMeta{ClientID: "app-1", DeviceID: "lamp-1", MsgID: "7", AcceptedAt: now, Outcome: contracts.OutcomeReply}
	b.Run("ResultHeaders", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = contracts.ResultHeaders(h, contracts.OutcomeReply)
		}
	})
	b.Run("ResultMeta.Headers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = m.Headers()
		}
	})
}
