package console

import (
	"slices"
	"strings"
	"sync"
	"time"

	"cafe/contracts"
)

// Presence of a device as the console shows it.
const (
	Online  = "online"
	Offline = "offline"
	Unknown = "unknown" // registered, never announced (or its presence was cleared)
)

// DeviceRow is one row of the devices page.
type DeviceRow struct {
	ID         string    `json:"id"`
	lower      string    // the id in lower case, for searching
	Presence   string    `json:"presence"`
	LastSeen   time.Time `json:"last_seen,omitzero"` // when its presence last changed, as seen by this console
	Registered bool      `json:"registered"`
}

// Index is what the console knows of every device: the registry's ids
// joined with their retained presence. Reads take a read lock and scan a
// sorted slice, which for 20,000 devices is well under a millisecond.
type Index struct {
	mu     sync.RWMutex
	rows   map[string]*DeviceRow
	sorted []string // ids, sorted; nil when it must be rebuilt
	online int
	now    func() time.Time
}

// NewIndex is an empty index.
func NewIndex() *Index { return &Index{rows: map[string]*DeviceRow{}, now: time.Now} }

// OnPresence is the MQTT handler for devices/+/presence. Malformed
// payloads and topics are ignored (the barista counts them).
func (x *Index) OnPresence(topic string, payload []byte) {
	id, ok := contracts.ParsePresenceTopic(topic)
	if !ok {
		return
	}
	state := Unknown
	switch online, err := contracts.ParsePresence(payload); {
	case err == nil && online:
		state = Online
	case err == nil:
		state = Offline
	case err != contracts.ErrPresenceCleared:
		return
	}
	x.set(id, state)
}

func (x *Index) set(id, state string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r := x.row(id)
	if r.Presence == Online {
		x.online--
	}
	if state == Online {
		x.online++
	}
	r.Presence, r.LastSeen = state, x.now()
}

// row returns id's row, adding it (called with mu held).
func (x *Index) row(id string) *DeviceRow {
	r, ok := x.rows[id]
	if !ok {
		r = &DeviceRow{ID: id, lower: strings.ToLower(id), Presence: Unknown}
		x.rows[id] = r
		x.sorted = nil
	}
	return r
}

// SetRegistered marks exactly ids as registered (the registry's devices).
func (x *Index) SetRegistered(ids []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
		x.row(id).Registered = true
	}
	for id, r := range x.rows {
		r.Registered = want[id]
	}
}

// Counts are the numbers at the top of the devices page.
type Counts struct {
	Online int `json:"online"`
	Known  int `json:"known"`
}

// Counts counts the devices.
func (x *Index) Counts() Counts {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Counts{Online: x.online, Known: len(x.rows)}
}

// Query is a search of the devices page.
type Query struct {
	Text     string // part of the id, case-insensitive
	Presence string // online, offline, unknown; "": any
	Offset   int
	Limit    int
}

// Found is one page of a search, with the number of matches in all.
type Found struct {
	Rows  []DeviceRow `json:"rows"`
	Total int         `json:"total"`
}

// Search returns the devices matching q, by id, one page of them.
func (x *Index) Search(q Query) Found {
	ids := x.ids()
	x.mu.RLock()
	defer x.mu.RUnlock()
	text := strings.ToLower(q.Text)
	out := Found{Rows: []DeviceRow{}}
	for _, id := range ids {
		r := x.rows[id]
		if r == nil || (text != "" && !strings.Contains(r.lower, text)) || (q.Presence != "" && r.Presence != q.Presence) {
			continue
		}
		if out.Total >= q.Offset && len(out.Rows) < q.Limit {
			out.Rows = append(out.Rows, *r)
		}
		out.Total++
	}
	return out
}

// ids is the sorted id list, rebuilt when a device was added.
func (x *Index) ids() []string {
	x.mu.RLock()
	ids := x.sorted
	x.mu.RUnlock()
	if ids != nil {
		return ids
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sorted == nil {
		x.sorted = make([]string, 0, len(x.rows))
		for id := range x.rows {
			x.sorted = append(x.sorted, id)
		}
		slices.Sort(x.sorted)
	}
	return x.sorted
}
