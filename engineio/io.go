package engineio

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// errWouldBlock is a non-blocking write's (or read's) "try again later".
var errWouldBlock = errors.New("would block")

// ioEngine is how WebSocket connections are read and written: with epoll
// (no goroutine per idle connection; Linux) or with a goroutine per
// connection (everywhere, and for connections epoll cannot take, such as
// TLS ones).
type ioEngine interface {
	// wrap takes over a hijacked connection. It may hand the connection to
	// another engine, which it returns.
	wrap(nc net.Conn, writeTimeout time.Duration) (ioEngine, rawConn, error)
	// register starts delivering input to c.handleRead.
	register(c *wsConn) error
	// unregister stops it: once it returns, no new input is delivered (a
	// read already started may still run, and find the connection closed).
	unregister(c *wsConn)
	// scheduleFlush has c.flush run soon, on a goroutine of the engine's.
	scheduleFlush(c *wsConn)
	// waitWritable has c.flush run again once the connection is writable.
	waitWritable(c *wsConn)
}

// rawConn is the connection under a wsConn.
type rawConn interface {
	// writev writes bufs in order; it returns how many bytes it wrote and
	// errWouldBlock if it could not write them all without blocking.
	writev(bufs [][]byte) (int, error)
	// shutdownWrite half-closes the connection (TCP FIN).
	shutdownWrite()
	// close closes it; concurrent and later reads and writes fail.
	close()
}

func newIOEngine(mode IOMode) ioEngine {
	if mode == IOModeEpoll {
		if e := epollEngine(); e != nil {
			return e
		}
	}
	return goroutineIO
}

// goroutineIO parks a reader goroutine on every connection and writes with
// a goroutine that exists while data moves.
var goroutineIO = &goroutineEngine{}

type goroutineEngine struct{}

type goroutineConn struct {
	nc net.Conn
	// writeTimeout bounds one write: a client that accepts nothing for
	// that long is gone.
	writeTimeout time.Duration
}

func (e *goroutineEngine) wrap(nc net.Conn, writeTimeout time.Duration) (ioEngine, rawConn, error) {
	// No deadline left from the handshake (an upgrade probe's 101 is
	// written with one): the reader has none, each write sets its own.
	_ = nc.SetDeadline(time.Time{})
	return e, &goroutineConn{nc: nc, writeTimeout: writeTimeout}, nil
}

func (e *goroutineEngine) register(c *wsConn) error {
	gc := c.raw.(*goroutineConn)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := gc.nc.Read(buf)
			if n > 0 && !c.handleRead(buf[:n]) {
				return
			}
			if err != nil {
				c.onReadError(err)
				return
			}
		}
	}()
	return nil
}

func (e *goroutineEngine) unregister(c *wsConn) {}

func (e *goroutineEngine) scheduleFlush(c *wsConn) { go c.flush() }

func (e *goroutineEngine) waitWritable(c *wsConn) { go c.flush() }

func (g *goroutineConn) writev(bufs [][]byte) (int, error) {
	_ = g.nc.SetWriteDeadline(time.Now().Add(g.writeTimeout))
	b := net.Buffers(bufs)
	n, err := b.WriteTo(g.nc)
	return int(n), err
}

func (g *goroutineConn) shutdownWrite() {
	if cw, ok := g.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (g *goroutineConn) close() { _ = g.nc.Close() }

// evConn is a connection the epoll engine drives: a WebSocket (wsConn), or
// a keep-alive HTTP connection whose polling requests the server serves
// itself (pollConn).
type evConn interface {
	evs() *evState
	// runRead reads the connection until it has nothing more, on a reader
	// goroutine (which may run the session's handlers); one runs at a time
	// (evState.rstate).
	runRead()
	// runFlush writes what waits to be written, on a flush worker; it
	// makes only non-blocking system calls.
	runFlush()
}

// evState is what the epoll engine keeps of an evConn: 8 bytes, the
// flags as bits of one word (a WebSocket's size budget).
type evState struct {
	rstate atomic.Int32
	flags  atomic.Uint32 // evHup, evWaitOut
}

const (
	evHup     = 1 << iota // epoll reported the peer's hang-up or an error (see epoll.read)
	evWaitOut             // a flush waits for the socket to be writable
)

func (s *evState) setHup()      { s.flags.Or(evHup) }
func (s *evState) hupped() bool { return s.flags.Load()&evHup != 0 }
func (s *evState) setWaitOut()  { s.flags.Or(evWaitOut) }

// takeWaitOut clears evWaitOut and reports whether it was set.
func (s *evState) takeWaitOut() bool { return s.flags.And(^uint32(evWaitOut))&evWaitOut != 0 }

// Reader states of a connection (rstate), for the epoll engine.
const (
	readIdle    = 0
	readRunning = 1
	readAgain   = 2 // running, and more input was signalled meanwhile
	readDead    = 3
)

// workers runs tasks on a fixed set of goroutines, in the order they were
// submitted. Tasks must not block: the flushes of the epoll engine, which
// only make non-blocking system calls.
type workers struct {
	ch chan evConn
	fn func(evConn)
}

func newWorkers(n int, fn func(evConn)) *workers {
	w := &workers{ch: make(chan evConn, 1<<16), fn: fn}
	for range n {
		go func() {
			for c := range w.ch {
				fn(c)
			}
		}()
	}
	return w
}

func (w *workers) submit(c evConn) {
	select {
	case w.ch <- c:
	default:
		go w.fn(c) // more connections waiting than the queue holds
	}
}

// elastic runs tasks that may block (reads, which run the session's
// handlers) on idle goroutines, starting a new one when none is idle. An
// idle goroutine exits after a while.
type elastic struct {
	ch chan evConn
	fn func(evConn)
}

const elasticIdle = 10 * time.Second

func newElastic(fn func(evConn)) *elastic { return &elastic{ch: make(chan evConn), fn: fn} }

func (e *elastic) submit(c evConn) {
	select {
	case e.ch <- c:
	default:
		go e.worker(c)
	}
}

func (e *elastic) worker(c evConn) {
	e.fn(c)
	t := time.NewTimer(elasticIdle)
	defer t.Stop()
	for {
		select {
		case c := <-e.ch:
			e.fn(c)
			t.Reset(elasticIdle)
		case <-t.C:
			return
		}
	}
}

// readBufs are the buffers reads borrow while they run.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func flushWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }
