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
	// goroutine (which may run the session's handlers), into buf, the
	// reader's own (nothing keeps it after the call); one runs at a time
	// (evState.rstate).
	runRead(buf []byte)
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
// handlers) on idle goroutines, starting a new one only when none is idle:
// a worker counts itself idle as soon as it has finished a task, and
// submit reserves one before it queues a task for it. (A non-blocking send
// to the workers' receive, before, found none ready whenever they had
// finished but were not waiting again yet: a ramp of 12 000 connects
// started 4 000 of them, each growing its stack through the handler chain,
// then idle for elasticIdle.) An idle goroutine exits after elasticIdle,
// unless every idle one is spoken for; one that finishes when
// elasticMaxIdle are idle exits at once.
//
// idle is the number of workers done with their task less the tasks
// reserved for them and not yet taken; ch holds those tasks.
type elastic struct {
	ch      chan evConn
	idle    atomic.Int64
	started atomic.Int64 // workers started (TestElastic)
	fn      func(evConn, []byte)
	onExit  func() // if set (TestElastic), each worker calls it as it exits
}

const elasticIdle = 10 * time.Second

// elasticMaxIdle bounds the idle workers: after a burst that needed more
// at once (thousands, when every client of a node goes away together and
// their disconnects wait for the same locks), the others exit as they
// finish, rather than keep their stacks for elasticIdle.
var elasticMaxIdle = int64(max(64, 16*runtime.GOMAXPROCS(0)))

// elasticQueue bounds the tasks queued for idle workers; a submit that
// finds it full waits for one of them to take a task.
const elasticQueue = 256

func newElastic(fn func(evConn, []byte)) *elastic {
	return &elastic{ch: make(chan evConn, elasticQueue), fn: fn}
}

func (e *elastic) submit(c evConn) {
	if e.takeIdle() {
		e.ch <- c
		return
	}
	go e.worker(c)
}

// worker runs fn for c, then for the tasks queued for idle workers, each
// with a buffer borrowed from readBufs, until it has been idle for
// elasticIdle.
func (e *elastic) worker(c evConn) {
	e.started.Add(1)
	if e.onExit != nil {
		defer e.onExit()
	}
	t := time.NewTimer(elasticIdle)
	defer t.Stop()
	for {
		bp := readBufs.Get().(*[]byte)
		e.fn(c, *bp)
		readBufs.Put(bp)
		if !e.addIdle() {
			return // enough wait already: this one's stack goes
		}
		t.Reset(elasticIdle)
		select {
		case c = <-e.ch: // reserved for an idle worker: idle counts this one out already
		case <-t.C:
			if e.takeIdle() { // counted out: leave
				return
			}
			c = <-e.ch // every idle worker is reserved, this one too
		}
	}
}

// addIdle counts a worker in as idle, unless elasticMaxIdle are; it
// reports whether it did.
func (e *elastic) addIdle() bool {
	for {
		n := e.idle.Load()
		if n >= elasticMaxIdle {
			return false
		}
		if e.idle.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// takeIdle counts one idle worker out, unless none is left unreserved: a
// submit reserves it for its task, a worker timing out leaves with it. It
// reports whether it did.
func (e *elastic) takeIdle() bool {
	for {
		n := e.idle.Load()
		if n <= 0 {
			return false
		}
		if e.idle.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// readBufSize is the size of a read buffer: the epoll loop owns one, and a
// reader borrows one from readBufs for each connection it reads. (A buffer
// owned by each reader for its life saved making them again after every
// garbage collection, but its idle readers then kept 32 KiB each: up to
// 2 MiB, which TestFrontHeapBound counted against the connections.)
const readBufSize = 32 << 10

// readBufs are the buffers readers borrow while they read a connection.
var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

func flushWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }
