package engineio

import (
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// AcceptListener returns a listener that accepts ln's connections with
// accept4 on ln's socket, for a Front: their sockets are not put in Go's
// network poller, so the front puts them in the epoll set as they are,
// where a connection of ln's own would cost a copy of its descriptor and
// its poller's registration, getsockname and, later, the copy's
// unregistration and close (five system calls of a WebSocket connect's
// fourteen). A connection the front gives to net/http becomes one of Go's
// poller when it is first read or given a deadline (materialize). ln is
// returned as it is if it is not a *net.TCPListener, or if its socket
// cannot be copied. Linux only; elsewhere ln is returned.
//
// Accept waits for connections in Go's poller, on a copy of ln's socket
// made an *os.File (a listener's own SyscallConn cannot wait); Close
// closes both.
func AcceptListener(ln net.Listener) net.Listener {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln
	}
	sc, err := tl.SyscallConn()
	if err != nil {
		return ln
	}
	fd := -1
	var dupErr error
	if err := sc.Control(func(s uintptr) { fd, dupErr = dupCloexec(int(s)) }); err != nil || dupErr != nil {
		return ln
	}
	f := os.NewFile(uintptr(fd), "listener") // non-blocking (the file description is Go's): in the poller
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return ln
	}
	l := &acceptListener{TCPListener: tl, file: f, rc: rc}
	if a, ok := tl.Addr().(*net.TCPAddr); ok && !a.IP.IsUnspecified() {
		l.local = a // every connection's local address (no getsockname)
	}
	return l
}

// acceptListener is AcceptListener's listener.
type acceptListener struct {
	*net.TCPListener
	file   *os.File        // the copy of the socket Accept waits on
	rc     syscall.RawConn // file's
	local  *net.TCPAddr    // the listener's address if it is a specific one
	closed atomic.Bool
}

// Accept accepts the next connection, as a non-blocking, close-on-exec
// socket with TCP_NODELAY (as Go's) and without keep-alive probes (as
// the server's listener).
func (l *acceptListener) Accept() (net.Conn, error) {
	var (
		fd   = -1
		sa   syscall.Sockaddr
		aerr error
	)
	err := l.rc.Read(func(lfd uintptr) bool {
		for {
			fd, sa, aerr = syscall.Accept4(int(lfd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			switch aerr {
			case syscall.EINTR, syscall.ECONNABORTED:
				continue // as Go's accept: the next one
			case syscall.EAGAIN:
				return false // wait in the poller
			}
			return true
		}
	})
	switch {
	case l.closed.Load():
		if fd >= 0 && aerr == nil {
			_ = syscall.Close(fd)
		}
		err = net.ErrClosed
	case err == nil && aerr != nil:
		err = os.NewSyscallError("accept4", aerr)
	}
	if err != nil {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: err}
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	return &acceptedConn{fd: fd, raddr: sockaddrTCP(sa), ln: l}, nil
}

// Close closes the listener: its socket and the copy Accept waits on.
func (l *acceptListener) Close() error {
	l.closed.Store(true)
	err := l.TCPListener.Close()
	_ = l.file.Close()
	return err
}

// SetDeadline sets the deadline of Accept.
func (l *acceptListener) SetDeadline(t time.Time) error { return l.file.SetDeadline(t) }

// sockaddrTCP is sa as a *net.TCPAddr.
func sockaddrTCP(sa syscall.Sockaddr) *net.TCPAddr {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: net.IPv4(a.Addr[0], a.Addr[1], a.Addr[2], a.Addr[3]), Port: a.Port}
	case *syscall.SockaddrInet6:
		ta := &net.TCPAddr{IP: make(net.IP, net.IPv6len), Port: a.Port}
		copy(ta.IP, a.Addr[:])
		if a.ZoneId != 0 {
			if ifi, err := net.InterfaceByIndex(int(a.ZoneId)); err == nil {
				ta.Zone = ifi.Name
			}
		}
		return ta
	}
	return &net.TCPAddr{}
}

// Where an acceptedConn's descriptor is (acceptedConn.state).
const (
	acceptedOwn   = iota // the conn's: closed by its Close
	acceptedLent         // in the front's epoll set (lend); back with unlend
	acceptedTaken        // the engine's now, a WebSocket's (take)
)

// acceptedConn is a connection an acceptListener accepted: a non-blocking
// socket outside Go's network poller. The front lends its descriptor to
// the epoll set while it waits for the head, and the engine takes it for
// a WebSocket; a connection given to net/http becomes a connection of
// Go's poller (materialize: a copy of the descriptor, the original
// closed) when it is first read or given a deadline.
//
// mu guards the fields; the descriptor's use by Write (shared) against
// its close (exclusive) is fdMu's, as fdConn's; a Write waiting for room
// in the socket's buffer checks closing every tenth of a second, so a
// Close does not wait for it longer.
type acceptedConn struct {
	ln    *acceptListener
	raddr *net.TCPAddr

	fdMu    sync.RWMutex
	closing atomic.Bool

	mu     sync.Mutex
	fd     int // -1 once closed, taken or materialized
	state  int
	closed bool
	laddr  net.Addr
	nc     net.Conn // the materialized connection, once it is one
	// reclaim, if set, takes the lent descriptor back from the epoll set
	// (the front's, for a handler that hijacked the connection).
	reclaim func()
	rdl     time.Time
	wdl     time.Time
}

func (c *acceptedConn) RemoteAddr() net.Addr { return c.raddr }

func (c *acceptedConn) LocalAddr() net.Addr {
	if c.ln.local != nil {
		return c.ln.local
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.laddr == nil {
		switch {
		case c.nc != nil:
			c.laddr = c.nc.LocalAddr()
		case c.fd >= 0:
			if sa, err := syscall.Getsockname(c.fd); err == nil {
				c.laddr = sockaddrTCP(sa)
			}
		}
		if c.laddr == nil {
			return c.ln.Addr()
		}
	}
	return c.laddr
}

// lend gives the descriptor to the front's epoll set; -1 if the
// connection is not its own (closed, materialized, lent).
func (c *acceptedConn) lend() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.nc != nil || c.state != acceptedOwn {
		return -1
	}
	c.state = acceptedLent
	return c.fd
}

// unlend gives the descriptor back, out of the epoll set now: the
// connection's again, closed here if it was closed meanwhile.
func (c *acceptedConn) unlend() {
	c.mu.Lock()
	if c.state != acceptedLent {
		c.mu.Unlock()
		return
	}
	c.state = acceptedOwn
	closed := c.closed
	c.mu.Unlock()
	if closed {
		c.closeFD()
	}
}

// setReclaim sets what takes the lent descriptor back, for materialize.
func (c *acceptedConn) setReclaim(f func()) {
	c.mu.Lock()
	c.reclaim = f
	c.mu.Unlock()
}

// take hands the lent descriptor over to the engine (a WebSocket), which
// closes it: this connection no longer uses it.
func (c *acceptedConn) take() {
	c.fdMu.Lock()
	c.mu.Lock()
	if c.state == acceptedLent {
		c.state = acceptedTaken
		c.fd = -1
		c.reclaim = nil
	}
	c.mu.Unlock()
	c.fdMu.Unlock()
}

// closeFD closes the descriptor, once no Write uses it.
func (c *acceptedConn) closeFD() {
	c.fdMu.Lock()
	defer c.fdMu.Unlock()
	c.mu.Lock()
	fd := c.fd
	c.fd = -1
	c.mu.Unlock()
	if fd >= 0 {
		_ = syscall.Close(fd)
	}
}

func (c *acceptedConn) Close() error {
	c.closing.Store(true)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.closed = true
	nc, state := c.nc, c.state
	c.mu.Unlock()
	switch {
	case nc != nil:
		return nc.Close()
	case state == acceptedOwn:
		c.closeFD()
	}
	// Lent: unlend closes it; taken: the engine's.
	return nil
}

// materialize makes the connection one of Go's network poller, if it is
// its own still: what net/http and the deadlines need. It returns that
// connection, or nil if the connection cannot be one (closed, lent or
// taken).
func (c *acceptedConn) materialize() net.Conn {
	c.mu.Lock()
	if r := c.reclaim; r != nil && c.state == acceptedLent && !c.closed {
		c.reclaim = nil
		c.mu.Unlock()
		r() // unlend, unless the engine took it meanwhile
		c.mu.Lock()
	}
	if c.nc != nil || c.closed || c.state != acceptedOwn {
		nc := c.nc
		c.mu.Unlock()
		return nc
	}
	c.mu.Unlock()
	c.fdMu.Lock() // no Write on the descriptor meanwhile
	defer c.fdMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil || c.closed || c.state != acceptedOwn || c.fd < 0 {
		return c.nc
	}
	nc, err := fileConn(c.fd) // closes c.fd
	c.fd = -1
	if err != nil {
		c.closed = true
		return nil
	}
	if !c.rdl.IsZero() {
		_ = nc.SetReadDeadline(c.rdl)
	}
	if !c.wdl.IsZero() {
		_ = nc.SetWriteDeadline(c.wdl)
	}
	c.nc = nc
	return nc
}

// NetConn is the connection of Go's poller this one became (see
// materialize), or nil.
func (c *acceptedConn) NetConn() net.Conn {
	if nc := c.materialize(); nc != nil {
		return nc
	}
	return nil
}

func (c *acceptedConn) Read(p []byte) (int, error) {
	nc := c.materialize()
	if nc == nil {
		return 0, net.ErrClosed
	}
	return nc.Read(p)
}

// Write writes p on the descriptor while the connection has not become
// one of Go's poller (the 101 of a WebSocket handshake, while the front
// lends it to the epoll set), waiting for room with ppoll up to the write
// deadline.
func (c *acceptedConn) Write(p []byte) (int, error) {
	c.fdMu.RLock()
	c.mu.Lock()
	nc, fd, closed, dl := c.nc, c.fd, c.closed, c.wdl
	c.mu.Unlock()
	if nc != nil {
		c.fdMu.RUnlock()
		return nc.Write(p)
	}
	defer c.fdMu.RUnlock()
	if fd < 0 || closed {
		return 0, net.ErrClosed
	}
	written := 0
	for written < len(p) {
		n, err := syscall.Write(fd, p[written:])
		if n > 0 {
			written += n
		}
		switch err {
		case nil:
			if n == 0 {
				return written, syscall.EIO
			}
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
		default:
			return written, err
		}
		if err := c.waitWritable(fd, dl); err != nil {
			return written, err
		}
	}
	return written, nil
}

// waitWritable waits until fd has room to write, dl passes (a timeout
// error) or the connection is being closed.
func (c *acceptedConn) waitWritable(fd int, dl time.Time) error {
	for {
		if c.closing.Load() {
			return net.ErrClosed
		}
		wait := 100 * time.Millisecond
		if !dl.IsZero() {
			left := time.Until(dl)
			if left <= 0 {
				return os.ErrDeadlineExceeded
			}
			wait = min(wait, left)
		}
		revents, errno := ppoll(fd, pollOut, wait)
		if errno != 0 && errno != syscall.EINTR {
			return errno
		}
		if revents != 0 {
			return nil // writable, or an error the next write reports
		}
	}
}

// The poll(2) events ppoll waits for.
const (
	pollIn  = 0x1
	pollOut = 0x4
)

// ppoll waits up to timeout for one of events on fd, and returns the
// events that happened (0 when it timed out).
func ppoll(fd int, events int16, timeout time.Duration) (int16, syscall.Errno) {
	pfd := struct {
		fd              int32
		events, revents int16
	}{fd: int32(fd), events: events}
	ts := syscall.NsecToTimespec(int64(max(timeout, 0)))
	_, _, errno := syscall.Syscall6(syscall.SYS_PPOLL, uintptr(unsafe.Pointer(&pfd)), 1, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	return pfd.revents, errno
}

// setDeadlines sets the read and/or write deadline: the materialized
// connection's, or kept for it (Write's own bound meanwhile).
func (c *acceptedConn) setDeadlines(t time.Time, read, write bool) error {
	c.mu.Lock()
	nc := c.nc
	if nc == nil {
		if read {
			c.rdl = t
		}
		if write {
			c.wdl = t
		}
	}
	c.mu.Unlock()
	switch {
	case nc == nil:
		return nil
	case read && write:
		return nc.SetDeadline(t)
	case read:
		return nc.SetReadDeadline(t)
	default:
		return nc.SetWriteDeadline(t)
	}
}

func (c *acceptedConn) SetDeadline(t time.Time) error      { return c.setDeadlines(t, true, true) }
func (c *acceptedConn) SetReadDeadline(t time.Time) error  { return c.setDeadlines(t, true, false) }
func (c *acceptedConn) SetWriteDeadline(t time.Time) error { return c.setDeadlines(t, false, true) }

// acceptedOf is the acceptedConn under nc's wrappers (NetConn), or nil.
func acceptedOf(nc net.Conn) *acceptedConn {
	for {
		switch c := nc.(type) {
		case *acceptedConn:
			return c
		case *returnedConn:
			nc = c.Conn
			continue
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
}
