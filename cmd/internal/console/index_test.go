package console

import (
	"fmt"
	"strings"
	"testing"
)

func TestIndexPresenceAndSearch(t *testing.T) {
	x := NewIndex()
	x.SetRegistered([]string{"lamp-1", "lamp-2", "door-7"})
	x.OnPresence("devices/lamp-1/presence", []byte(`{"online":true}`))
	x.OnPresence("devices/door-7/presence", []byte(`{"online":false}`))
	x.OnPresence("devices/stray/presence", []byte(`{"online":true,"battery":3}`))
	for name, in := range map[string][2]string{
		"malformed payload": {"devices/lamp-2/presence", `{"online":"yes"}`},
		"not json":          {"devices/lamp-2/presence", `<script>`},
		"bad topic":         {"devices/a/b/presence", `{"online":true}`},
		"wildcard id":       {"devices/+/presence", `{"online":true}`},
		"huge id":           {"devices/" + strings.Repeat("x", 300) + "/presence", `{"online":true}`},
	} {
		x.OnPresence(in[0], []byte(in[1]))
		if got := x.Counts(); got.Online != 2 || got.Known != 4 {
			t.Fatalf("after %s: counts %+v, want 2 online of 4", name, got)
		}
	}
	got := x.Search(Query{Text: "LAMP", Limit: 10})
	if got.Total != 2 || got.Rows[0].ID != "lamp-1" || got.Rows[0].Presence != Online || got.Rows[1].Presence != Unknown {
		t.Fatalf("search lamp: %+v", got)
	}
	if got := x.Search(Query{Presence: Offline, Limit: 10}); got.Total != 1 || got.Rows[0].ID != "door-7" {
		t.Fatalf("search offline: %+v", got)
	}
	if got := x.Search(Query{Limit: 10}); got.Rows[3].ID != "stray" || got.Rows[3].Registered {
		t.Fatalf("an unregistered device with presence: %+v", got.Rows)
	}
	x.OnPresence("devices/lamp-1/presence", nil) // cleared
	if got := x.Counts(); got.Online != 1 {
		t.Fatalf("after clearing lamp-1: %d online, want 1", got.Online)
	}
}

func TestIndexPages(t *testing.T) {
	x := NewIndex()
	for i := range 20000 {
		x.OnPresence(fmt.Sprintf("devices/dev-%05d/presence", i), []byte(`{"online":true}`))
	}
	got := x.Search(Query{Text: "dev-1", Offset: 50, Limit: 50})
	if got.Total != 10000 || len(got.Rows) != 50 || got.Rows[0].ID != "dev-10050" {
		t.Fatalf("page 2 of dev-1: total %d, %d rows, first %v", got.Total, len(got.Rows), got.Rows[0].ID)
	}
	if got := x.Search(Query{Text: "dev-12345", Limit: 50}); got.Total != 1 {
		t.Fatalf("one device among 20,000: total %d", got.Total)
	}
}

func BenchmarkSearch20000(b *testing.B) {
	x := NewIndex()
	for i := range 20000 {
		x.OnPresence(fmt.Sprintf("devices/dev-%05d/presence", i), []byte(`{"online":true}`))
	}
	for b.Loop() {
		x.Search(Query{Text: "dev-12345", Limit: 50})
	}
}
