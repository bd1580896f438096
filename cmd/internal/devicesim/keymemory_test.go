package devicesim

import (
	"strconv"
	"testing"
)

func TestKeyMemoryForgetsOldestFirst(t *testing.T) {
	m := newKeyMemory(100, 1<<30)
	for i := range 1000 {
		m.add(newEntry(strconv.Itoa(i)))
	}
	if got := m.len(); got != 100 {
		t.Fatalf("remembers %d keys, want 100", got)
	}
	for i := range 1000 {
		_, got := m.get(strconv.Itoa(i))
		if want := i >= 900; got != want {
			t.Fatalf("key %d: remembered %v, want %v", i, got, want)
		}
	}
}

func TestKeyMemoryBoundsBytes(t *testing.T) {
	m := newKeyMemory(100, 100)
	var es []*entry
	for i := range 5 {
		e := newEntry(strconv.Itoa(i))
		m.add(e)
		m.account(e, 30)
		es = append(es, e)
	}
	// 5 × 30 bytes over a budget of 100: the two oldest go.
	for i, e := range es {
		_, got := m.get(e.key)
		if want := i >= 2; got != want {
			t.Errorf("key %d: remembered %v, want %v", i, got, want)
		}
	}
	if m.bytes != 90 {
		t.Errorf("bytes %d, want 90", m.bytes)
	}
	big := newEntry("big")
	m.add(big)
	m.account(big, 1000)
	if m.len() != 0 || m.bytes != 0 {
		t.Errorf("a reply over the whole budget left %d keys, %d bytes; want none", m.len(), m.bytes)
	}
}

func TestKeyMemoryForgetIsExact(t *testing.T) {
	m := newKeyMemory(3, 1<<20)
	a := newEntry("a")
	m.add(a)
	m.account(a, 10)
	m.forget(a) // abandoned: a redelivery must run again
	if _, ok := m.get("a"); ok || m.bytes != 0 {
		t.Fatalf("forgotten key still there (bytes %d)", m.bytes)
	}
	again := newEntry("a")
	m.add(again)
	m.add(newEntry("b"))
	m.add(newEntry("c")) // evicts the slot of the forgotten "a", not the new one
	if e, ok := m.get("a"); !ok || e != again {
		t.Fatal("evicting a forgotten entry's slot removed the key's new entry")
	}
	m.add(newEntry("d"))
	if _, ok := m.get("a"); ok {
		t.Fatal("oldest key kept past the limit")
	}
}
