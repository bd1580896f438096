package devicesim

// entry is what a device remembers of one repeat key: the outcome of its
// only execution. done is closed once reply is final; a repeat that arrives
// earlier waits on it.
type entry struct {
	key       string
	done      chan struct{}
	reply     []byte // nil: nothing to send (notification, "never")
	isError   bool   // reply carries an error object
	abandoned bool   // the execution was cut short (device went offline); no reply

	size       int  // bytes counted against the memory's budget
	remembered bool // still reachable by key
}

func newEntry(key string) *entry { return &entry{key: key, done: make(chan struct{})} }

// keyMemory remembers the most recent repeat keys of one device, oldest out
// first, bounded both in keys and in reply bytes. It is a ring of entries
// plus an index by key; the ring grows on demand up to maxKeys, so a large
// budget costs nothing until it is used. Not safe for concurrent use: the
// device's mutex guards it.
type keyMemory struct {
	maxKeys  int
	maxBytes int
	bytes    int
	byKey    map[string]*entry
	ring     []*entry // oldest at head; n live slots
	head, n  int
}

func newKeyMemory(maxKeys, maxBytes int) *keyMemory {
	return &keyMemory{maxKeys: max(maxKeys, 1), maxBytes: maxBytes} // byKey made by the first add
}

// get returns the entry remembered for key.
func (m *keyMemory) get(key string) (*entry, bool) {
	e, ok := m.byKey[key]
	return e, ok
}

// add remembers e under e.key, which must not be remembered yet, forgetting
// the oldest key when full.
func (m *keyMemory) add(e *entry) {
	if m.n == m.maxKeys {
		m.evictOldest()
	}
	if m.n == len(m.ring) {
		m.grow()
	}
	m.ring[(m.head+m.n)%len(m.ring)] = e
	m.n++
	if m.byKey == nil {
		m.byKey = map[string]*entry{}
	}
	m.byKey[e.key] = e
	e.remembered = true
}

// grow makes room for at least one more entry, keeping the order.
func (m *keyMemory) grow() {
	ordered := make([]*entry, min(max(2*m.n, 16), m.maxKeys))
	for i := range m.n {
		ordered[i] = m.ring[(m.head+i)%len(m.ring)]
	}
	m.ring, m.head = ordered, 0
}

func (m *keyMemory) evictOldest() {
	e := m.ring[m.head]
	m.ring[m.head] = nil
	m.head = (m.head + 1) % len(m.ring)
	m.n--
	m.forget(e)
}

// forget makes e unreachable and returns its bytes to the budget. Its ring
// slot, if any, ages out as usual.
func (m *keyMemory) forget(e *entry) {
	if !e.remembered {
		return
	}
	e.remembered = false
	if m.byKey[e.key] == e {
		delete(m.byKey, e.key)
	}
	m.bytes -= e.size
	e.size = 0
}

// account charges size bytes for e's reply, forgetting the oldest keys
// while over budget (possibly e itself, if it alone is too large).
func (m *keyMemory) account(e *entry, size int) {
	if !e.remembered {
		return
	}
	e.size = size
	m.bytes += size
	for m.bytes > m.maxBytes && m.n > 0 {
		m.evictOldest()
	}
}

// len is the number of keys remembered.
func (m *keyMemory) len() int { return len(m.byKey) }
