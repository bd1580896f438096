// Package groupwrite makes many small writes to a connection cost fewer
// system calls, without waiting for anything.
//
// The broker clients cafe uses write every message with its own flush: one
// write(2) per AMQP publish or ack and per MQTT packet. Under load those
// system calls are a third of a service's CPU, and the broker handles as
// many TCP segments. A Conn from this package writes at once, from the
// caller, when the connection is idle (nothing written in the last
// IdleAfter), exactly as the bare connection would. When it is busy, a
// Write only takes the bytes into a buffer and returns; one goroutine
// writes out whatever has gathered, in a single system call, as soon as
// there is anything (group commit). No timer is involved: a busy
// connection gets batching, an idle one no hand-off latency. (The clients
// hold their own locks while they write, so batching is only possible when
// Write returns before the system call.)
//
// A gathered Write returns before its bytes reach the socket. Its error is
// therefore reported by a later Write (or Close), after which the Conn is
// closed; the clients above treat that as a lost connection, as they would
// the error itself. A writer that gets more than MaxBuffered bytes ahead of
// the socket waits, so memory stays bounded when the peer is slow.
//
// Reads are buffered too: paho reads each MQTT packet a byte or a few at a
// time (type, each length byte, then the rest), one system call each.
package groupwrite

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// MaxBuffered is how far writers may get ahead of the batch being written:
// at most about twice this is held in memory.
const MaxBuffered = 4 << 20

// Conn is a net.Conn whose writes are gathered (see the package doc).
type Conn struct {
	net.Conn
	in *bufio.Reader // Read goes through it: one system call for many small reads

	mu      sync.Mutex
	drained *sync.Cond // signalled when a write completes
	pending []byte
	writing bool      // a write system call is under way (caller or writer goroutine)
	last    time.Time // when the last write system call ended
	err     error     // the first write error; sticky
	closed  bool
	wake    chan struct{} // buffered 1: there is something to write
	done    chan struct{} // closed when the writer goroutine exits
}

// New wraps c.
func New(c net.Conn) *Conn {
	g := &Conn{Conn: c, in: bufio.NewReaderSize(c, readBuffer), wake: make(chan struct{}, 1), done: make(chan struct{})}
	g.drained = sync.NewCond(&g.mu)
	go g.writer()
	return g
}

// IdleAfter is how long after the last write a connection counts as idle,
// so that the next write goes out at once from the caller.
const IdleAfter = time.Millisecond

// readBuffer is the read buffer's size.
const readBuffer = 32 << 10

// Read reads through the read buffer. Only one goroutine may read, as with
// any net.Conn used by a single reader.
func (g *Conn) Read(p []byte) (int, error) { return g.in.Read(p) }

// Write writes p at once when the connection is idle, and otherwise takes
// it into the buffer and returns; see the package doc.
func (g *Conn) Write(p []byte) (int, error) {
	g.mu.Lock()
	for g.err == nil && !g.closed && len(g.pending) > MaxBuffered {
		g.drained.Wait()
	}
	if g.err != nil {
		err := g.err
		g.mu.Unlock()
		return 0, err
	}
	if g.closed {
		g.mu.Unlock()
		return 0, net.ErrClosed
	}
	if !g.writing && len(g.pending) == 0 && time.Since(g.last) > IdleAfter {
		g.writing = true
		g.mu.Unlock()
		_, err := g.Conn.Write(p)
		g.wrote(err)
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	g.pending = append(g.pending, p...)
	g.mu.Unlock()
	g.signal()
	return len(p), nil
}

func (g *Conn) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// wrote ends a write system call: it records an error (closing the
// connection, so readers see the loss too) and hands anything gathered
// meanwhile to the writer goroutine.
func (g *Conn) wrote(err error) {
	g.mu.Lock()
	g.writing = false
	g.last = time.Now()
	if err != nil && g.err == nil {
		g.err = err
	}
	more := (len(g.pending) > 0 || g.closed) && g.err == nil
	g.drained.Broadcast()
	g.mu.Unlock()
	if err != nil {
		_ = g.Conn.Close()
	}
	if more {
		g.signal()
	}
}

func (g *Conn) writer() {
	defer close(g.done)
	var out []byte
	for range g.wake {
		g.mu.Lock()
		if g.writing {
			g.mu.Unlock()
			continue // the write under way signals again when it ends
		}
		out, g.pending = g.pending, out[:0]
		g.writing = len(out) > 0
		closed, failed := g.closed, g.err != nil
		g.mu.Unlock()
		if failed {
			return
		}
		if len(out) > 0 {
			_, err := g.Conn.Write(out)
			g.wrote(err)
			if err != nil {
				return
			}
			continue
		}
		if closed {
			return
		}
	}
}

// Close writes out what is buffered (for at most a second) and closes the
// connection.
func (g *Conn) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return net.ErrClosed
	}
	g.closed = true
	g.mu.Unlock()
	g.signal()
	select {
	case <-g.done: // the writer flushed what was gathered and left
	case <-time.After(time.Second):
	}
	err := g.Conn.Close()
	g.mu.Lock()
	g.drained.Broadcast()
	g.mu.Unlock()
	return err
}
