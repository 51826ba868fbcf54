package eio

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
	"time"
)

// Target is an endpoint and a namespace that Poller.Dial opens sessions on,
// resolved once for many dials.
type Target struct {
	addr4  syscall.SockaddrInet4 // copied per dial: Connect writes into it
	addr6  syscall.SockaddrInet6
	family int
	req    []byte // the upgrade request up to the key's value
	nsp    string
}

// NewTarget resolves endpoint (http://host:port/path/) for sessions that join
// namespace nsp.
func NewTarget(endpoint, nsp string) (*Target, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	ta, err := net.ResolveTCPAddr("tcp", u.Host)
	if err != nil {
		return nil, err
	}
	t := &Target{req: upgradeRequest(u), nsp: nsp}
	if ip4 := ta.IP.To4(); ip4 != nil {
		t.addr4, t.family = syscall.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}, syscall.AF_INET
	} else {
		t.addr6, t.family = syscall.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}, syscall.AF_INET6
	}
	return t, nil
}

// sockaddr is a copy of t's address for one connect (syscall.Connect
// writes into the Sockaddr it is given, so dials on other goroutines must
// not share one).
func (t *Target) sockaddr() syscall.Sockaddr {
	if t.family == syscall.AF_INET {
		a := t.addr4
		return &a
	}
	a := t.addr6
	return &a
}

// DialOptions are a dial's socket options.
type DialOptions struct {
	// Src is the source address (IPv4), bound with IP_BIND_ADDRESS_NO_PORT
	// so the port is picked per destination at connect; nil: the kernel's
	// choice.
	Src net.IP
	// RcvBuf, when > 0, is the socket's receive buffer, set before connecting.
	RcvBuf int
}

// DefaultDialTimeout bounds a Poller.Dial from the socket to CONNECT's answer.
const DefaultDialTimeout = 30 * time.Second

// dialing is a connection the poller is opening. The loop goroutine that owns
// the connection runs the opening; over settles the race between it and the
// sweeper that ends dials past their deadline.
type dialing struct {
	o    opening
	req  []byte // what is left to write of the upgrade request
	done func(*RawConn, error)
	over atomic.Bool // done was called
}

// Dial opens a session on one of p's loops without blocking the caller: the
// socket, the connect, the upgrade and Socket.IO's CONNECT all run on the
// loop's goroutine. A connect then costs the load generator about ten system
// calls and no goroutine switch, where a net.Conn handshake detached onto the
// poller (DialRawIn, then Add) costs twice the calls plus the runtime
// poller's wake-ups: on the 2-core benchmark machine that work competed with
// the server under test for the CPU the connect rate is measured with.
//
// done is called once: on the loop's goroutine when the session joined (it is
// already being read for onEvent and onClose, as after Add) or failed, or on
// the sweeper's goroutine when it took longer than p.DialTimeout. done must
// not block; it may call Dial. Dial returns an error, without calling done,
// when the socket cannot be created or the connect fails at once.
func (p *Poller) Dial(t *Target, opt DialOptions, onEvent func(pkt []byte), onClose func(error), done func(*RawConn, error)) error {
	fd, err := syscall.Socket(t.family, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	if err := dialSocket(fd, t, opt); err != nil {
		syscall.Close(fd)
		return err
	}
	d := &dialing{o: opening{nsp: t.nsp}, done: done}
	req := appendKey(append(make([]byte, 0, len(t.req)+32), t.req...), maskSeed.Add(1))
	// On loopback the connect has usually completed by now: writing the
	// request at once spares waiting for EPOLLOUT and an epoll_ctl.
	n, err := syscall.Write(fd, req)
	switch {
	case n == len(req):
	case err == nil || err == syscall.EAGAIN || err == syscall.EINTR || err == syscall.ENOTCONN:
		d.req = req[max(n, 0):]
	default:
		syscall.Close(fd)
		return fmt.Errorf("write the upgrade request: %w", err)
	}
	c := &RawConn{fd: fd, onEvent: onEvent, onClose: onClose, dial: d}
	p.startSweeper()
	c.loop = p.loops[p.next.Add(1)%uint32(len(p.loops))]
	if err := c.loop.addDialing(c, d); err != nil {
		c.loop.del(c)
		syscall.Close(fd)
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// dialSocket sets fd's options and starts its connect.
func dialSocket(fd int, t *Target, opt DialOptions) error {
	if opt.RcvBuf > 0 {
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, opt.RcvBuf); err != nil {
			return fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	if ip4 := opt.Src.To4(); ip4 != nil {
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, IPBindAddressNoPort, 1)
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte(ip4)}); err != nil {
			return fmt.Errorf("bind %s: %w", opt.Src, err)
		}
	}
	if err := syscall.Connect(fd, t.sockaddr()); err != nil && err != syscall.EINPROGRESS {
		return fmt.Errorf("connect: %w", err)
	}
	return nil
}

// addDialing registers c, still opening, on l: for reading, and for writing
// while the request is not all sent.
func (l *pollLoop) addDialing(c *RawConn, d *dialing) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	if len(d.req) > 0 { // before the loop may see c
		ev.Events |= syscall.EPOLLOUT
	}
	l.mu.Lock()
	l.conns[int32(c.fd)] = c
	if l.dialing == nil {
		l.dialing = map[*RawConn]dialEntry{}
	}
	l.dialing[c] = dialEntry{d: d, since: time.Now()}
	l.mu.Unlock()
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev)
}

// dialEntry is a dial in progress, for the sweeper.
type dialEntry struct {
	d     *dialing
	since time.Time
}

// dialReady runs on c's loop goroutine for each event while c is opening.
func (c *RawConn) dialReady(events uint32, buf []byte) {
	d := c.dial
	if len(d.req) > 0 {
		if events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			c.writeRequest(d)
		}
		return // the answer can only follow the whole request
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	k := copy(buf, c.pending)
	n, err := syscall.Read(c.fd, buf[k:k+openingBufSize])
	c.mu.Unlock()
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err != nil || n == 0 {
		if err == nil {
			err = errors.New("EOF")
		}
		c.dialFailed(d, fmt.Errorf("%s: %w", d.o.waitingFor(), err))
		return
	}
	data := buf[:k+n]
	used, err := d.o.feed(c, data, func(pkt []byte) error { return c.writeFrame(opText, pkt) }, c.dispatch)
	c.pending = append(c.pending[:0], data[used:]...)
	switch {
	case d.o.joined():
		// Joined, even if the server closed the session in the same read:
		// that is the session's end (onClose), not a failed dial.
		if !d.over.CompareAndSwap(false, true) {
			return // the sweeper ended it first
		}
		c.loop.mu.Lock()
		delete(c.loop.dialing, c)
		c.loop.mu.Unlock()
		c.dial = nil
		d.done(c, nil)
		if err != nil {
			c.fail(err)
		}
	case err != nil:
		c.dialFailed(d, err)
	case len(c.pending) >= openingBufSize:
		c.dialFailed(d, fmt.Errorf("%s: more than %d bytes", d.o.waitingFor(), openingBufSize))
	}
}

// writeRequest writes what is left of the upgrade request once the connect
// completed, then stops watching for EPOLLOUT.
func (c *RawConn) writeRequest(d *dialing) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	n, err := syscall.Write(c.fd, d.req)
	if n > 0 {
		d.req = d.req[n:]
	}
	if err == nil && len(d.req) == 0 {
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
		err = syscall.EpollCtl(c.loop.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
	}
	c.mu.Unlock()
	if err != nil && err != syscall.EAGAIN && err != syscall.EINTR {
		c.dialFailed(d, fmt.Errorf("upgrade: %w", err))
	}
}

// dialFailed closes c and reports err to done, unless done was called.
// onClose is never called for a dial that failed.
func (c *RawConn) dialFailed(d *dialing, err error) {
	if !d.over.CompareAndSwap(false, true) {
		return
	}
	c.endOnce.Do(func() {})
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.loop.del(c)
		syscall.Close(c.fd)
	}
	c.mu.Unlock()
	d.done(nil, err)
}

// startSweeper starts, once, the goroutine that ends dials past
// p.DialTimeout; Close stops it.
func (p *Poller) startSweeper() {
	p.sweepOnce.Do(func() {
		timeout := p.DialTimeout
		if timeout <= 0 {
			timeout = DefaultDialTimeout
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			tick := time.NewTicker(max(min(timeout/10, time.Second), time.Millisecond))
			defer tick.Stop()
			for {
				select {
				case now := <-tick.C:
					p.expireDials(now.Add(-timeout), fmt.Errorf("no session within %s", timeout))
				case <-p.quit:
					return
				}
			}
		}()
	})
}

// expireDials fails every dial that started before cutoff with err.
func (p *Poller) expireDials(cutoff time.Time, err error) {
	type late struct {
		c *RawConn
		d *dialing
	}
	var expired []late
	for _, l := range p.loops {
		l.mu.Lock()
		for c, e := range l.dialing {
			if e.since.Before(cutoff) {
				expired = append(expired, late{c, e.d})
			}
		}
		l.mu.Unlock()
	}
	for _, e := range expired {
		e.c.dialFailed(e.d, err)
	}
}
