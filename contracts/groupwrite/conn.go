// Package groupwrite makes many small writes to a connection cost fewer
// system calls, without waiting for anything.
//
// The broker clients cafe uses write every message with its own flush: one
// write(2) per AMQP publish or ack and per MQTT packet. Under load those
// system calls are a third of a service's CPU, and the broker handles as
// many TCP segments. A Conn from this package takes each Write into a
// buffer and returns; one goroutine writes out whatever has gathered, in a
// single system call, as soon as there is anything. An idle connection
// writes at once (there is nothing to wait for); a busy one writes in
// batches of everything that arrived during the previous write (group
// commit). No timer is involved, so no latency is added.
//
// Writes return before the bytes reach the socket. A write error is
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
	drained *sync.Cond // signalled when pending is written out
	pending []byte
	err     error // the first write error; sticky
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

// readBuffer is the read buffer's size.
const readBuffer = 32 << 10

// Read reads through the read buffer. Only one goroutine may read, as with
// any net.Conn used by a single reader.
func (g *Conn) Read(p []byte) (int, error) { return g.in.Read(p) }

// Write takes p into the buffer and returns; see the package doc.
func (g *Conn) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for g.err == nil && !g.closed && len(g.pending) > MaxBuffered {
		g.drained.Wait()
	}
	if g.err != nil {
		return 0, g.err
	}
	if g.closed {
		return 0, net.ErrClosed
	}
	g.pending = append(g.pending, p...)
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (g *Conn) writer() {
	defer close(g.done)
	var out []byte
	for range g.wake {
		g.mu.Lock()
		out, g.pending = g.pending, out[:0]
		closed := g.closed
		g.mu.Unlock()
		var err error
		if len(out) > 0 {
			_, err = g.Conn.Write(out)
		}
		g.mu.Lock()
		if err != nil && g.err == nil {
			g.err = err
		}
		g.drained.Broadcast()
		stop := g.err != nil || (closed && len(g.pending) == 0)
		g.mu.Unlock()
		if err != nil {
			_ = g.Conn.Close() // readers see the loss too
		}
		if stop {
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
	select {
	case g.wake <- struct{}{}:
	default:
	}
	select {
	case <-g.done:
	case <-time.After(time.Second):
	}
	err := g.Conn.Close()
	g.mu.Lock()
	g.drained.Broadcast()
	g.mu.Unlock()
	return err
}
