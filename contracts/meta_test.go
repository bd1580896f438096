package contracts_test

import (
	"reflect"
	"testing"
	"time"

	"cafe/contracts"
)

// ResultHeaders, built from a command's headers, say what
// ResultMeta.Headers says, and carry nothing else of the command.
func TestResultHeadersFromTheCommand(t *testing.T) {
	now := time.Unix(0, time.Now().UnixNano())
	cmd := contracts.CommandMeta{CommandID: contracts.NewCommandID(), ClientID: "app-1", DeviceID: "lamp-1", MsgID: `"a-7"`,
		Deadline: now.Add(time.Minute), AcceptedAt: now}
	h := cmd.Headers()
	h["x-delivery-count"] = int64(2) // added by RabbitMQ on a redelivery
	want := contracts.ResultMeta{CommandID: cmd.CommandID, ClientID: cmd.ClientID, DeviceID: cmd.DeviceID, MsgID: cmd.MsgID,
		AcceptedAt: cmd.AcceptedAt, Outcome: contracts.OutcomeTimeout}
	got := contracts.ResultHeaders(h, contracts.OutcomeTimeout)
	if !reflect.DeepEqual(got, want.Headers()) {
		t.Fatalf("ResultHeaders = %v, want %v", got, want.Headers())
	}
	parsed, err := contracts.ParseResultMeta(cmd.CommandID, got)
	if err != nil || parsed != want {
		t.Fatalf("parsed back: %+v, %v; want %+v", parsed, err, want)
	}
	// An accepted-at sent as int32 (any integer is accepted) stays as it came.
	h[contracts.HeaderAcceptedAt] = int32(12345)
	if v := contracts.ResultHeaders(h, "made-up")[contracts.HeaderAcceptedAt]; v != int32(12345) {
		t.Errorf("accepted-at %v (%T), want the command's own value", v, v)
	}
	delete(h, contracts.HeaderMsgID) // a one-way command
	if v := contracts.ResultHeaders(h, contracts.OutcomeSent)[contracts.HeaderMsgID]; v != "" {
		t.Errorf("msg id of a one-way command's result: %#v, want \"\" as ResultMeta.Headers gives", v)
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
