package groupwrite_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"cafe/contracts/groupwrite"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// countingConn records what reaches the socket and in how many writes; a
// write can be held back to let writes gather.
type countingConn struct {
	net.Conn
	mu      sync.Mutex
	buf     bytes.Buffer
	writes  int
	hold    chan struct{} // if set, each write announces itself on entered, then waits for hold
	entered chan struct{}
	fail    error
}

func (c *countingConn) Write(p []byte) (int, error) {
	if c.hold != nil {
		select {
		case c.entered <- struct{}{}:
		default: // nobody is watching any more
		}
		<-c.hold
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes++
	c.buf.Write(p)
	return len(p), nil
}

func (c *countingConn) Close() error { return nil }

func (c *countingConn) snapshot() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.writes
}

func TestWritesArriveInOrderAndGathered(t *testing.T) {
	under := &countingConn{hold: make(chan struct{}), entered: make(chan struct{}, 16)}
	g := groupwrite.New(under)
	// The first write goes out at once, from its own goroutine (the
	// connection is idle), and is held in the "system call"; the next ten
	// gather behind it and return.
	first := make(chan error, 1)
	go func() {
		_, err := g.Write([]byte("a"))
		first <- err
	}()
	<-under.entered
	for i := range 10 {
		if _, err := g.Write([]byte{byte('0' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	under.hold <- struct{}{} // "a"
	<-under.entered
	under.hold <- struct{}{} // "0123456789", in one write
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, writes := under.snapshot()
		if got == "a0123456789" {
			if writes != 2 {
				t.Fatalf("%d writes to the socket, want 2 (the ten gathered)", writes)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket got %q", got)
		}
		time.Sleep(time.Millisecond)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentWritersLoseNothing(t *testing.T) {
	under := &countingConn{}
	g := groupwrite.New(under)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				msg := []byte{byte('A' + w), byte(i % 10)}
				if _, err := g.Write(msg); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	got, writes := under.snapshot()
	if len(got) != 8*1000*2 {
		t.Fatalf("%d bytes reached the socket, want %d", len(got), 8*1000*2)
	}
	// Each writer's messages keep their order.
	next := map[byte]int{}
	for i := 0; i < len(got); i += 2 {
		w, n := got[i], int(got[i+1])
		if n != next[w]%10 {
			t.Fatalf("writer %c: message %d out of order", w, next[w])
		}
		next[w]++
	}
	t.Logf("8000 writes became %d system calls", writes)
}

func TestWriteErrorIsReportedAndSticks(t *testing.T) {
	boom := errors.New("connection reset")
	under := &countingConn{fail: boom}
	g := groupwrite.New(under)
	// An idle connection writes at once, so the error comes back at once;
	// every later write reports it too.
	for range 3 {
		if _, err := g.Write([]byte("x")); !errors.Is(err, boom) {
			t.Fatalf("got %v, want %v", err, boom)
		}
	}
	_ = g.Close()
}

func TestGatheredWriteErrorIsReportedLater(t *testing.T) {
	boom := errors.New("connection reset")
	under := &countingConn{hold: make(chan struct{}), entered: make(chan struct{}, 16)}
	g := groupwrite.New(under)
	go func() { _, _ = g.Write([]byte("first")) }()
	<-under.entered
	if _, err := g.Write([]byte("gathered")); err != nil {
		t.Fatalf("a gathered write: %v (its error can only come later)", err)
	}
	under.mu.Lock()
	under.fail = boom
	under.mu.Unlock()
	close(under.hold) // the first write and then the gathered batch fail
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := g.Write([]byte("y"))
		if errors.Is(err, boom) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write error never reported; last %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	_ = g.Close()
}

func TestSlowPeerHoldsWritersBack(t *testing.T) {
	client, server := net.Pipe() // writes block until read
	g := groupwrite.New(client)
	var written atomic.Int64
	const writers, chunkSize = 4, 64 << 10
	for range writers {
		go func() {
			chunk := make([]byte, chunkSize)
			for {
				if _, err := g.Write(chunk); err != nil {
					return
				}
				written.Add(int64(len(chunk)))
			}
		}()
	}
	// Wait until the writers are held back: they got at least MaxBuffered
	// ahead, and the count no longer moves.
	deadline := time.Now().Add(5 * time.Second)
	for last := int64(-1); ; {
		w := written.Load()
		if w >= groupwrite.MaxBuffered && w == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writers never settled: %d bytes written", w)
		}
		last = w
		time.Sleep(20 * time.Millisecond)
	}
	// At most one batch in the blocked write and MaxBuffered (plus a chunk
	// per writer) waiting behind it.
	if w := written.Load(); w > 2*(groupwrite.MaxBuffered+writers*chunkSize) {
		t.Fatalf("writers got %d bytes ahead of a peer that reads nothing", w)
	}
	go func() { _, _ = io.Copy(io.Discard, server) }()
	before := written.Load()
	deadline = time.Now().Add(5 * time.Second)
	for written.Load() < before+int64(groupwrite.MaxBuffered) {
		if time.Now().After(deadline) {
			t.Fatal("writers did not resume once the peer read")
		}
		time.Sleep(time.Millisecond)
	}
	_ = g.Close()
	_ = server.Close()
}

func TestCloseFlushesAndThenRefuses(t *testing.T) {
	under := &countingConn{}
	g := groupwrite.New(under)
	_, _ = g.Write([]byte("last words"))
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := under.snapshot(); got != "last words" {
		t.Fatalf("socket got %q after Close", got)
	}
	if _, err := g.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := g.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

// countingReader is a connection that counts the reads that reach it.
type countingReader struct {
	net.Conn
	src   io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.src.Read(p)
}

func (c *countingReader) Close() error { return nil }

func TestReadsAreBuffered(t *testing.T) {
	under := &countingReader{src: strings.NewReader("abcdef")}
	g := groupwrite.New(under)
	defer g.Close()
	var got []byte
	b := make([]byte, 1)
	for {
		n, err := g.Read(b) // a byte at a time, as paho reads a packet header
		got = append(got, b[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != "abcdef" {
		t.Fatalf("read %q", got)
	}
	// Six one-byte reads, plus the one that finds the end: at most two
	// reads reach the connection (the data, then EOF), not seven.
	if under.reads > 2 {
		t.Fatalf("%d reads reached the connection for six bytes", under.reads)
	}
}
