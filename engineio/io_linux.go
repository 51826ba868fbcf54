package engineio

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// epoll is the Linux I/O engine: one goroutine waits on an epoll set (parked
// in Go's network poller: parkedWait) for the connections of every server
// in the process, readable connections are read by an elastic pool of
// goroutines (which run the sessions' handlers), and writes are
// non-blocking writev calls made by a fixed pool of flush goroutines,
// resumed by EPOLLOUT when a socket's buffer is full. A
// connection with nothing to read or write costs no goroutine and no
// buffer: its file descriptor, taken out of Go's network poller, and its
// structs.
type epoll struct {
	fd      int
	readers *elastic
	flusher *workers
	loopBuf []byte // the loop goroutine's read buffer (loopReader)

	mu sync.Mutex
	// conns is the table of registered connections, indexed by file
	// descriptor: descriptors are small and dense (the kernel hands out the
	// lowest free one), so a slice costs 8 bytes per descriptor up to the
	// highest in use, where a map cost about 36 per connection. It grows
	// with the highest descriptor and does not shrink; the open-file limit
	// bounds it.
	conns []evConn
}

var (
	epollOnce sync.Once
	epollInst *epoll
)

// epollEngine returns the process's epoll engine, started on first use, or
// nil if epoll cannot be used.
func epollEngine() ioEngine {
	epollOnce.Do(func() {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		e := &epoll{fd: fd}
		wait, _, err := parkedWait(fd)
		if err != nil {
			syscall.Close(fd)
			return
		}
		e.readers = newElastic(evConn.runRead)
		e.loopBuf = make([]byte, readBufSize)
		e.flusher = newWorkers(flushWorkers(), evConn.runFlush)
		go e.loop(wait)
		epollInst = e
	})
	if epollInst == nil {
		return nil
	}
	return epollInst
}

// fdConn is a socket detached from Go's network poller: a duplicate of the
// hijacked connection's descriptor, in non-blocking mode. mu guards the
// descriptor's life: reads and writes hold it shared, close exclusively,
// so a descriptor is never used after it was closed (and reused).
type fdConn struct {
	mu sync.RWMutex
	fd int // -1 once closed
}

func (e *epoll) wrap(nc net.Conn, writeTimeout time.Duration) (ioEngine, rawConn, error) {
	if fh, ok := nc.(*frontHijacked); ok {
		// Hijacked from the front door: its copy of the socket is in the
		// epoll set already (add takes it over).
		if fc := fh.takeFD(); fc != nil {
			_ = nc.Close()
			return e, fc, nil
		}
	}
	tc, _ := liveTCP(nc)
	if tc == nil {
		return goroutineIO.wrap(nc, writeTimeout)
	}
	fd, err := dupTCP(tc)
	if err != nil {
		return nil, nil, err
	}
	_ = nc.Close() // the duplicate keeps the socket open; wrappers see their Close
	return e, &fdConn{fd: fd}, nil
}

// liveTCP is the TCP connection under nc, through its wrappers
// (NetConn), whose descriptor reads and writes nc's socket: for a
// connection the keep-alive fast path gave back, the one made for it (the
// listener's underneath has its descriptor closed). nil if there is none,
// with isTLS when a TLS connection was found on the way (the bytes
// underneath are encrypted).
func liveTCP(nc net.Conn) (tc *net.TCPConn, isTLS bool) {
	inner := nc
	for {
		if rc, ok := inner.(*returnedConn); ok {
			inner = rc.Conn
			continue
		}
		if _, ok := inner.(*tls.Conn); ok {
			return nil, true
		}
		u, ok := inner.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		inner = u.NetConn()
	}
	tc, _ = inner.(*net.TCPConn)
	return tc, false
}

// dupTCP duplicates tc's descriptor. One fcntl(F_DUPFD_CLOEXEC) rather
// than dup, then F_SETFD and F_GETFL/F_SETFL: the duplicate shares the
// open file description, which Go's network poller made non-blocking (it
// polls nothing else), so O_NONBLOCK is already set; descriptors are
// close-on-exec.
func dupTCP(tc *net.TCPConn) (int, error) {
	sc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := sc.Control(func(s uintptr) { fd, dupErr = dupCloexec(int(s)) }); err != nil {
		return -1, err
	}
	return fd, dupErr
}

// dupCloexec duplicates fd, close-on-exec, in one system call.
func dupCloexec(fd int) (int, error) {
	for {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

func (e *epoll) register(c *wsConn) error { return e.add(c, c.raw.(*fdConn)) }

// add puts c, whose socket is fc, in the table and in the epoll set.
func (e *epoll) add(c evConn, fc *fdConn) error {
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd < 0 {
		return net.ErrClosed
	}
	e.mu.Lock()
	if fc.fd >= len(e.conns) {
		e.conns = append(e.conns, make([]evConn, fc.fd+1-len(e.conns))...)
	}
	// The front's entry of this very socket (frontHijacked: the WebSocket
	// took its fdConn) is adopted; any other entry is a stale one of a
	// socket closed before its taker registered, whose number the kernel
	// has given to this one.
	adopted := frontOf(e.conns[fc.fd], fc)
	e.conns[fc.fd] = c
	e.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | epollET, Fd: int32(fc.fd)}
	op := syscall.EPOLL_CTL_ADD
	if adopted {
		// A socket the front door has in the set (frontHijacked), now c's:
		// modifying it reports at once what is there to read, whose edge
		// may have gone to the front's connection.
		op = syscall.EPOLL_CTL_MOD
	}
	if err := syscall.EpollCtl(e.fd, op, fc.fd, &ev); err != nil {
		e.mu.Lock()
		e.conns[fc.fd] = nil
		e.mu.Unlock()
		return err
	}
	return nil
}

// frontOf reports whether entry is the front's connection of fc's socket
// (the same fdConn, which frontHijacked.takeFD hands over).
func frontOf(entry evConn, fc *fdConn) bool {
	fr, ok := entry.(*frontConn)
	return ok && fr.fc == fc
}

func (e *epoll) unregister(c *wsConn) {
	if fc, ok := c.raw.(*fdConn); ok {
		e.remove(c, fc)
	}
}

// remove takes c out of the table and the epoll set; once it returns, no
// new event starts a read or flush of it (the loop may still serve one it
// had taken, which finds the connection closed, as a read in progress
// does).
func (e *epoll) remove(c evConn, fc *fdConn) {
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd < 0 {
		return
	}
	e.mu.Lock()
	// With c's own entry goes the front's entry of the same socket, which
	// a WebSocket that took it and ends before it registered (the OPEN's
	// write failed: the client had gone) leaves in place.
	if fc.fd < len(e.conns) && (e.conns[fc.fd] == c || frontOf(e.conns[fc.fd], fc)) {
		e.conns[fc.fd] = nil
	}
	e.mu.Unlock()
	_ = syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_DEL, fc.fd, nil)
}

func (e *epoll) scheduleFlush(c *wsConn) { e.flusher.submit(c) }

// waitWritable asks for EPOLLOUT. Setting waitOut before the EPOLL_CTL_MOD
// (which reports a socket that is writable by now at once) means that the
// event cannot be missed; the flush that ends here must not touch the
// connection afterwards, since the event may start the next one at once.
func (e *epoll) waitWritable(c *wsConn) { e.waitOut(c, c.raw.(*fdConn)) }

// waitOut is waitWritable for any evConn.
func (e *epoll) waitOut(c evConn, fc *fdConn) {
	ev := c.evs()
	ev.setWaitOut()
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd < 0 {
		return
	}
	pev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | epollET, Fd: int32(fc.fd)}
	if err := syscall.EpollCtl(e.fd, syscall.EPOLL_CTL_MOD, fc.fd, &pev); err != nil && ev.takeWaitOut() {
		e.flusher.submit(c) // the flush will see the error
	}
}

// parkedWait returns the epoll loop's wait: epoll_wait that does not
// block, called again each time Go's network poller, where the epoll
// descriptor itself is registered (an epoll set is readable while it has
// events ready), says there are events. The loop's goroutine so parks in
// the runtime instead of blocking its thread in a system call: a blocked
// thread made the runtime's monitor (sysmon) wake every 20 µs to take its
// P back and start another thread, 5 % of the server's CPU while
// connections arrived.
//
// The returned File owns epfd from then on; the engine never closes it (it
// lives as long as the process).
func parkedWait(epfd int) (func(events []syscall.EpollEvent) int, *os.File, error) {
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	// One callback for every wait (a closure made per wait would be an
	// allocation per wake-up of the loop); wait is called by one goroutine.
	var (
		cur []syscall.EpollEvent
		n   int
	)
	take := func(fd uintptr) bool {
		for {
			r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&cur[0])), uintptr(len(cur)), 0, 0, 0)
			switch errno {
			case 0:
			case syscall.EINTR:
				continue
			default:
				panic("engineio: epoll_wait: " + errno.Error())
			}
			n = int(r)
			return n > 0
		}
	}
	return func(events []syscall.EpollEvent) int {
		cur = events
		if err := rc.Read(take); err != nil {
			panic("engineio: waiting for the epoll set: " + err.Error())
		}
		return n
	}, f, nil
}

// loop waits for readiness and dispatches it, forever.
func (e *epoll) loop(wait func(events []syscall.EpollEvent) int) {
	events := make([]syscall.EpollEvent, 256)
	conns := make([]evConn, len(events))
	for {
		n := wait(events)
		// The connections are looked up under the lock and served after
		// it, since a read on the loop (loopReader) may remove its own. A
		// connection removed meanwhile gets a spurious read or flush,
		// which finds it closed.
		e.mu.Lock()
		for i := range n {
			conns[i] = nil
			if fd := int(events[i].Fd); fd < len(e.conns) {
				conns[i] = e.conns[fd]
			}
		}
		e.mu.Unlock()
		for i := range n {
			ev, c := &events[i], conns[i]
			if c == nil {
				continue
			}
			conns[i] = nil
			st := c.evs()
			if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				st.setHup() // before the read it starts: see read
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				e.readableOnLoop(c)
			}
			if ev.Events&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && st.takeWaitOut() {
				e.flusher.submit(c)
			}
		}
	}
}

// loopReader is an evConn that may start its reads on the epoll loop's
// goroutine: readOnLoop runs with rstate readRunning, does only
// non-blocking work and no user code, and reports false to have a reader
// go on from where it stopped.
type loopReader interface{ readOnLoop(buf []byte) bool }

// readableOnLoop is readable on the epoll loop: a loopReader's read
// starts there.
func (e *epoll) readableOnLoop(c evConn) { e.startRead(c, true) }

// readable starts a read of c, or tells the running one to read again.
func (e *epoll) readable(c evConn) { e.startRead(c, false) }

func (e *epoll) startRead(c evConn, onLoop bool) {
	rs := &c.evs().rstate
	for {
		switch st := rs.Load(); st {
		case readIdle:
			if rs.CompareAndSwap(readIdle, readRunning) {
				if onLoop {
					if lr, ok := c.(loopReader); ok && lr.readOnLoop(e.loopBuf) {
						return
					}
				}
				e.readers.submit(c)
				return
			}
		case readRunning:
			if rs.CompareAndSwap(readRunning, readAgain) {
				return
			}
		default: // readAgain, readDead
			return
		}
	}
}

func (c *wsConn) evs() *evState      { return &c.evState }
func (c *wsConn) runRead(buf []byte) { epollInst.read(c, buf) }
func (c *wsConn) runFlush()          { c.flush() }

// read reads c until the socket has nothing more, handing what it reads to
// the connection. One runs at a time per connection (rstate).
func (e *epoll) read(c *wsConn, buf []byte) {
	fc := c.raw.(*fdConn)
	for {
		n, err := fc.read(buf)
		if n > 0 {
			if !c.handleRead(buf[:n]) {
				c.rstate.Store(readDead)
				return
			}
			if n == len(buf) || c.hupped() {
				continue
			}
			// A short read emptied the socket's receive queue: what
			// arrives from now on raises a new edge (EPOLLET), which
			// finds this read running (readAgain) or idle (a new read).
			// Stopping here saves the read that would fail with EAGAIN,
			// one system call per message of a quiet connection. Not
			// once the peer hung up: the end of the stream raises no
			// edge of its own when it came with the data just read, so
			// the reads go on to EOF.
			err = errWouldBlock
		}
		if errors.Is(err, errWouldBlock) {
			if c.rstate.CompareAndSwap(readRunning, readIdle) {
				return
			}
			if !c.rstate.CompareAndSwap(readAgain, readRunning) {
				return // dead
			}
			continue
		}
		c.onReadError(err)
		return
	}
}

func (fc *fdConn) read(p []byte) (int, error) {
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, err := rawRead(fc.fd, p)
		switch {
		case err == 0 && n == 0:
			return 0, io.EOF
		case err == 0:
			return n, nil
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		default:
			return 0, err
		}
	}
}

// rawRead is read(2) without the scheduler's system-call bookkeeping
// (syscall.RawSyscall): on a non-blocking socket the call does not wait and
// copies what is there, so the goroutine keeps its P through it, and
// entering it does not wake the runtime's monitor. Writes stay
// syscall.Syscall: a loopback write includes the receiving socket's
// processing and can take tens of µs, and the monitor's taking the P back
// from such a call is what lets the epoll loop, parked in Go's poller, run
// promptly while the flush workers are busy (with raw writes, p99 at high
// rates doubled: docs/BENCHMARKS.md, "Scheduler work per system call").
func rawRead(fd int, p []byte) (int, syscall.Errno) {
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(base), uintptr(len(p)))
	return int(n), errno
}

// epollET is EPOLLET as the uint32 the event mask is.
const epollET = 1 << 31

// maxIovecs is the most buffers one writev takes (IOV_MAX).
const maxIovecs = 1024

var iovecPool = sync.Pool{New: func() any { v := make([]syscall.Iovec, 0, 64); return &v }}

// stackIovecs is the most buffers a writev takes its iovecs for from the
// stack rather than iovecPool: a flush of a message or two (a frame is a
// header and a payload), the usual case, then costs no pool round trip.
const stackIovecs = 8

// writev writes bufs with as few system calls as it can, all of them
// non-blocking: it returns errWouldBlock, and what it wrote, when the
// socket's buffer is full.
func (fc *fdConn) writev(bufs [][]byte) (int, error) {
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd < 0 {
		return 0, net.ErrClosed
	}
	if len(bufs) <= stackIovecs {
		var iov [stackIovecs]syscall.Iovec
		n, _, err := fc.writevLocked(bufs, iov[:0])
		return n, err
	}
	vp := iovecPool.Get().(*[]syscall.Iovec)
	n, used, err := fc.writevLocked(bufs, *vp)
	clear(used) // only what this write filled: the rest holds no pointer
	*vp = used[:0]
	iovecPool.Put(vp)
	return n, err
}

// writevLocked is writev with fc.mu held, its iovecs built in iov's
// array; it returns that array (grown if it had to), with the iovecs of
// its largest call. A call with one buffer is a write(2).
func (fc *fdConn) writevLocked(bufs [][]byte, iov []syscall.Iovec) (total int, used []syscall.Iovec, err error) {
	for len(bufs) > 0 {
		iov = iov[:0]
		want := 0
		k := 0
		for ; k < len(bufs) && len(iov) < maxIovecs; k++ {
			if len(bufs[k]) == 0 {
				continue
			}
			v := syscall.Iovec{Base: &bufs[k][0]}
			v.SetLen(len(bufs[k]))
			iov = append(iov, v)
			want += len(bufs[k])
		}
		if len(iov) > len(used) {
			used = iov
		}
		if len(iov) == 0 {
			return total, used, nil
		}
		var n uintptr
		var errno syscall.Errno
		if len(iov) == 1 {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITE, uintptr(fc.fd), uintptr(unsafe.Pointer(iov[0].Base)), uintptr(iov[0].Len))
		} else {
			n, _, errno = syscall.Syscall(syscall.SYS_WRITEV, uintptr(fc.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		}
		if errno != 0 {
			switch errno {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return total, used, errWouldBlock
			default:
				return total, used, errno
			}
		}
		total += int(n)
		if int(n) < want {
			return total, used, errWouldBlock
		}
		bufs = bufs[k:]
	}
	return total, used, nil
}

func (fc *fdConn) shutdownWrite() {
	fc.mu.RLock()
	defer fc.mu.RUnlock()
	if fc.fd >= 0 {
		_ = syscall.Shutdown(fc.fd, syscall.SHUT_WR)
	}
}

// detach takes the descriptor out of fc, which is then closed, and returns
// it (-1 if fc was closed already).
func (fc *fdConn) detach() int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fd := fc.fd
	fc.fd = -1
	return fd
}

func (fc *fdConn) close() {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.fd >= 0 {
		_ = syscall.Close(fc.fd)
		fc.fd = -1
	}
}
