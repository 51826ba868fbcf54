package eio

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RawConn is a Socket.IO client on the WebSocket transport whose socket is
// read by a Poller (epoll) instead of a goroutine: with thousands of clients
// on a 2-core machine, a reader goroutine per client costs two read syscalls
// and a park/unpark per message, which made the load generator as expensive
// as the server under test. A Poller thread reads whatever is ready on many
// sockets per epoll_wait, once per socket.
//
// The WebSocket handshake and the framing are written out here (client
// frames masked, server frames unmasked, RFC 6455); only what the chat
// servers send is supported: text frames, fragmentation, ping and close.
type RawConn struct {
	SID, SocketID string
	// Pings counts the server's pings answered.
	Pings atomic.Int64

	fd      int
	mu      sync.Mutex // guards fd's lifetime: every syscall on fd, and close
	closed  bool
	wmu     sync.Mutex // one frame written at a time
	wbuf    []byte
	pending []byte // a partial frame left over from the last read
	frag    []byte // a fragmented message being reassembled
	fragOp  byte

	loop    *pollLoop
	dial    *dialing // while Poller.Dial opens it; owned by loop's goroutine
	paused  bool
	onEvent func(pkt []byte)
	onClose func(err error)
	endOnce sync.Once
}

// DialRaw opens a WebSocket-only session with dial (nil: net.Dialer), joins
// "/" and returns the connection detached from Go's network poller, ready to
// be added to a Poller.
func DialRaw(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), endpoint string) (*RawConn, error) {
	return DialRawIn(ctx, dial, endpoint, "/")
}

// DialRawIn is DialRaw joining namespace nsp instead of "/".
func DialRawIn(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), endpoint, nsp string) (*RawConn, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, err
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	c, err := handshake(ctx, nc, u, nsp)
	if err != nil {
		nc.Close()
		return nil, err
	}
	// Detach: keep a duplicate of the socket and close Go's copy, which
	// removes it from the runtime's epoll set.
	sc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		nc.Close()
		return nil, err
	}
	var dupErr error
	if err := sc.Control(func(fd uintptr) { c.fd, dupErr = syscall.Dup(int(fd)) }); err != nil {
		nc.Close()
		return nil, err
	}
	nc.Close()
	if dupErr != nil {
		return nil, fmt.Errorf("dup: %w", dupErr)
	}
	if err := syscall.SetNonblock(c.fd, true); err != nil {
		syscall.Close(c.fd)
		return nil, err
	}
	return c, nil
}

// handshake performs the HTTP upgrade and the Engine.IO/Socket.IO opening on
// nc (blocking, bounded by ctx's deadline).
func handshake(ctx context.Context, nc net.Conn, u *url.URL, nsp string) (*RawConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	if _, err := nc.Write(appendKey(upgradeRequest(u), maskSeed.Add(1))); err != nil {
		return nil, err
	}
	c := &RawConn{fd: -1}
	o := opening{nsp: nsp}
	send := func(p []byte) error {
		_, err := nc.Write(appendFrame(nil, opText, p))
		return err
	}
	after := func(byte, []byte) error { return errors.New("unexpected packets right after CONNECT") }
	buf := make([]byte, 0, openingBufSize)
	for {
		n, rerr := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		used, err := o.feed(c, buf, send, after)
		buf = append(buf[:0], buf[used:]...)
		switch {
		case err != nil:
			return nil, err
		case o.joined():
			c.pending = buf
			_ = nc.SetDeadline(time.Time{})
			return c, nil
		case rerr != nil:
			return nil, fmt.Errorf("%s: %w", o.waitingFor(), rerr)
		case len(buf) == cap(buf):
			return nil, fmt.Errorf("%s: more than %d bytes", o.waitingFor(), cap(buf))
		}
	}
}

// openingBufSize bounds what a session's opening (the 101 head, OPEN,
// CONNECT's answer) may take before it joined.
const openingBufSize = 4096

// upgradeRequest is the WebSocket upgrade request for endpoint u, up to the
// Sec-WebSocket-Key's value (appendKey finishes it).
func upgradeRequest(u *url.URL) []byte {
	return []byte("GET " + u.EscapedPath() + "?EIO=4&transport=websocket HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: ")
}

// appendKey ends an upgrade request with a key made from seed: on loopback
// the key only has to be well-formed (16 bytes, base64) and vary, not be
// secret, and this spares a getrandom per connection.
func appendKey(req []byte, seed uint32) []byte {
	var key [16]byte
	for i := 0; i < len(key); i += 4 {
		seed = seed*1664525 + 1013904223
		binary.LittleEndian.PutUint32(key[i:], seed)
	}
	req = base64.StdEncoding.AppendEncode(req, key[:])
	return append(req, "\r\n\r\n"...)
}

// opening is the client side of a session's opening, fed with the bytes read
// so far: the 101 head, the Engine.IO OPEN (answered with Socket.IO's
// CONNECT), then CONNECT's answer. Pings that arrive meanwhile are answered.
type opening struct {
	nsp   string
	stage int // openHead, openOpen, openConnect, openJoined
}

const (
	openHead = iota
	openOpen
	openConnect
	openJoined
)

func (o *opening) joined() bool { return o.stage == openJoined }

func (o *opening) waitingFor() string {
	return [...]string{"upgrade", "read OPEN", "read CONNECT", "joined"}[o.stage]
}

// feed consumes what it can of b for c: it returns how many bytes it used.
// send writes one text frame; after gets the messages and control frames
// that came after CONNECT's answer in the same read.
func (o *opening) feed(c *RawConn, b []byte, send func([]byte) error, after func(op byte, payload []byte) error) (int, error) {
	used := 0
	if o.stage == openHead {
		i := bytes.Index(b, []byte("\r\n\r\n"))
		if i < 0 {
			return 0, nil
		}
		status, _, _ := bytes.Cut(b[:i], []byte("\r\n"))
		if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
			return 0, fmt.Errorf("upgrade refused: %s", status)
		}
		used = i + 4
		o.stage = openOpen
	}
	n, err := c.parse(b[used:], func(op byte, pkt []byte) error {
		if o.stage == openJoined {
			return after(op, pkt)
		}
		switch op {
		case opClose:
			return fmt.Errorf("%s: %w", o.waitingFor(), ErrClosed)
		case opText, opBinary:
		default:
			return nil
		}
		switch {
		case len(pkt) == 1 && pkt[0] == typePing:
			return send([]byte{typePong})
		case o.stage == openOpen:
			if len(pkt) == 0 || pkt[0] != typeOpen {
				return fmt.Errorf("first packet %q, want OPEN", pkt)
			}
			sid, err := sidFromJSON(pkt[1:])
			if err != nil {
				return err
			}
			c.SID = sid
			o.stage = openConnect
			if err := send(connectPacket(o.nsp)); err != nil {
				return fmt.Errorf("send CONNECT: %w", err)
			}
		case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '0':
			c.SocketID, _ = sidFromJSON(pkt[2:])
			o.stage = openJoined
		case len(pkt) >= 2 && pkt[0] == '4' && pkt[1] == '4':
			return fmt.Errorf("CONNECT refused: %s", pkt[2:])
		}
		return nil
	})
	return used + n, err
}

// WebSocket opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// appendFrame appends one final, masked client frame.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], maskSeed.Add(0x9e3779b9))
	dst = append(dst, key[:]...)
	for i, b := range payload {
		dst = append(dst, b^key[i&3])
	}
	return dst
}

// maskSeed varies the masking keys; they only need to differ, not be secret,
// for a load generator on loopback.
var maskSeed atomic.Uint32

// parse consumes the complete frames at the start of b, passing each complete
// message (reassembled) and control frame to h, and returns how many bytes it
// consumed.
func (c *RawConn) parse(b []byte, h func(op byte, payload []byte) error) (int, error) {
	used := 0
	for {
		rest := b[used:]
		if len(rest) < 2 {
			return used, nil
		}
		fin, op := rest[0]&0x80 != 0, rest[0]&0x0f
		masked, n, hdr := rest[1]&0x80 != 0, int(rest[1]&0x7f), 2
		switch n {
		case 126:
			if len(rest) < 4 {
				return used, nil
			}
			n, hdr = int(binary.BigEndian.Uint16(rest[2:])), 4
		case 127:
			if len(rest) < 10 {
				return used, nil
			}
			n64 := binary.BigEndian.Uint64(rest[2:])
			if n64 > 1<<30 {
				return used, fmt.Errorf("frame of %d bytes", n64)
			}
			n, hdr = int(n64), 10
		}
		var key []byte
		if masked {
			if len(rest) < hdr+4 {
				return used, nil
			}
			key = rest[hdr : hdr+4]
			hdr += 4
		}
		if len(rest) < hdr+n {
			return used, nil
		}
		payload := rest[hdr : hdr+n]
		if masked {
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		used += hdr + n
		var err error
		switch {
		case op >= opClose: // control frames are never fragmented
			err = h(op, payload)
		case op == opContinuation:
			c.frag = append(c.frag, payload...)
			if fin {
				err = h(c.fragOp, c.frag)
				c.frag = c.frag[:0]
			}
		case !fin:
			c.fragOp = op
			c.frag = append(c.frag[:0], payload...)
		default:
			err = h(op, payload)
		}
		if err != nil {
			return used, err
		}
	}
}

// dispatch handles one message or control frame read by the poller.
func (c *RawConn) dispatch(op byte, payload []byte) error {
	switch op {
	case opText, opBinary:
		if len(payload) == 0 {
			return nil
		}
		switch payload[0] {
		case typeMessage:
			if len(payload) >= 2 && payload[1] == '2' {
				c.onEvent(payload)
			} else if len(payload) >= 2 && payload[1] == '1' {
				return ErrClosed
			}
		case typePing:
			c.Pings.Add(1)
			go func() { _ = c.Emit([]byte{typePong}) }() // never block the poller on a write
		case typeClose:
			return ErrClosed
		}
	case opPing:
		p := append([]byte(nil), payload...)
		go func() { _ = c.writeFrame(opPong, p) }()
	case opClose:
		return ErrClosed
	}
	return nil
}

// Emit sends one Engine.IO packet as a text frame. It blocks while the
// server does not read (up to 30 s), without holding up the poller.
func (c *RawConn) Emit(pkt []byte) error { return c.writeFrame(opText, pkt) }

func (c *RawConn) writeFrame(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = appendFrame(c.wbuf[:0], op, payload)
	b := c.wbuf
	deadline := time.Now().Add(30 * time.Second)
	for len(b) > 0 {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return net.ErrClosed
		}
		n, err := syscall.Write(c.fd, b)
		c.mu.Unlock()
		if n > 0 {
			b = b[n:]
		}
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
			if time.Now().After(deadline) {
				return errors.New("write blocked for 30s")
			}
			time.Sleep(200 * time.Microsecond)
		case err != nil:
			return err
		}
	}
	return nil
}

// Close closes the socket (as a closed tab does) and reports nil to onClose.
func (c *RawConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.loop != nil && !c.paused {
		c.loop.del(c)
	}
	err := syscall.Close(c.fd)
	c.mu.Unlock()
	c.end(nil)
	return err
}

func (c *RawConn) end(err error) {
	c.endOnce.Do(func() {
		if c.onClose != nil {
			c.onClose(err)
		}
	})
}

// Poller reads many RawConns with a few goroutines, each blocked in its own
// epoll_wait (level-triggered).
type Poller struct {
	// DialTimeout bounds each Dial (DefaultDialTimeout when zero); set it
	// before the first Dial.
	DialTimeout time.Duration

	loops     []*pollLoop
	next      atomic.Uint32
	stop      atomic.Bool
	quit      chan struct{} // closed by Close: ends the sweeper
	wg        sync.WaitGroup
	sweepOnce sync.Once
}

type pollLoop struct {
	p       *Poller
	epfd    int
	file    *os.File // epfd, registered in Go's network poller: run parks there
	mu      sync.RWMutex
	conns   map[int32]*RawConn
	dialing map[*RawConn]dialEntry // dials in progress, for the sweeper
}

// NewPoller starts n reader goroutines.
func NewPoller(n int) (*Poller, error) {
	p := &Poller{quit: make(chan struct{})}
	for range max(1, n) {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			p.Close()
			return nil, err
		}
		l := &pollLoop{p: p, epfd: epfd, conns: map[int32]*RawConn{}}
		if err := syscall.SetNonblock(epfd, true); err != nil {
			syscall.Close(epfd)
			p.Close()
			return nil, err
		}
		l.file = os.NewFile(uintptr(epfd), "epoll")
		p.loops = append(p.loops, l)
		p.wg.Add(1)
		go l.run()
	}
	return p, nil
}

// Close stops the reader goroutines and fails the dials in progress; it
// does not close the connections that joined.
func (p *Poller) Close() {
	if p.stop.Swap(true) {
		return
	}
	close(p.quit)
	p.expireDials(time.Now().Add(time.Hour), errors.New("eio: poller closed"))
	for _, l := range p.loops {
		l.file.Close() // wakes run, which returns
	}
	p.wg.Wait()
}

// Add starts reading c: onEvent gets every Socket.IO EVENT packet (42[...],
// valid only during the call, on a poller goroutine: it must not block);
// onClose is called once when the session ends (nil error after Close,
// ErrClosed when the server ended it).
func (p *Poller) Add(c *RawConn, onEvent func(pkt []byte), onClose func(error)) error {
	c.onEvent, c.onClose = onEvent, onClose
	c.loop = p.loops[p.next.Add(1)%uint32(len(p.loops))]
	if len(c.pending) > 0 { // bytes that came with the handshake
		used, err := c.parse(c.pending, c.dispatch)
		c.pending = append([]byte(nil), c.pending[used:]...)
		if err != nil {
			_ = c.Close()
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	return c.loop.add(c)
}

// Pause stops reading c: the server's writes pile up in the socket buffers
// and then in the server (a client that stopped reading). Resume undoes it.
func (p *Poller) Pause(c *RawConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && !c.paused {
		c.paused = true
		c.loop.del(c)
	}
}

// Resume starts reading a paused c again.
func (p *Poller) Resume(c *RawConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.paused {
		c.paused = false
		_ = c.loop.add(c)
	}
}

func (l *pollLoop) add(c *RawConn) error {
	l.mu.Lock()
	l.conns[int32(c.fd)] = c
	l.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
	return syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev)
}

func (l *pollLoop) del(c *RawConn) {
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	l.mu.Lock()
	if l.conns[int32(c.fd)] == c {
		delete(l.conns, int32(c.fd))
	}
	delete(l.dialing, c)
	l.mu.Unlock()
}

// readBufSize is the poller's read buffer: one read per ready socket takes
// up to this much.
const readBufSize = 256 << 10

// run dispatches l's events until Close. It waits in Go's network poller,
// where the epoll set is registered (readable while it has events), and
// takes the events with an epoll_wait that does not block: a goroutine
// blocked in epoll_wait made the runtime's monitor wake every 20 µs to hand
// its P to another thread, load-generator CPU the server under test could
// have used.
func (l *pollLoop) run() {
	defer l.p.wg.Done()
	events := make([]syscall.EpollEvent, 512)
	buf := make([]byte, readBufSize)
	rc, err := l.file.SyscallConn()
	if err != nil {
		return
	}
	var n int
	take := func(fd uintptr) bool { // made once: no allocation per wake-up
		var err error
		for {
			if n, err = syscall.EpollWait(int(fd), events, 0); err != syscall.EINTR {
				return n > 0 || err != nil
			}
		}
	}
	for {
		if err := rc.Read(take); err != nil || l.p.stop.Load() {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			l.mu.RLock()
			c := l.conns[ev.Fd]
			l.mu.RUnlock()
			switch {
			case c == nil:
			case c.dial != nil:
				c.dialReady(ev.Events, buf)
			default:
				c.readReady(buf)
			}
		}
	}
}

// readReady reads what the socket holds (once), handles every complete
// frame and keeps a partial one for next time.
func (c *RawConn) readReady(buf []byte) {
	c.mu.Lock()
	if c.closed || c.paused {
		c.mu.Unlock()
		return
	}
	k := copy(buf, c.pending)
	n, err := syscall.Read(c.fd, buf[k:])
	c.mu.Unlock()
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err != nil || n == 0 {
		c.fail(ErrClosed)
		return
	}
	data := buf[:k+n]
	used, perr := c.parse(data, c.dispatch)
	c.pending = append(c.pending[:0], data[used:]...)
	if perr == nil && used == 0 && len(data) == len(buf) {
		perr = errors.New("frame larger than the read buffer")
	}
	if perr != nil {
		c.fail(perr)
	}
}

// fail closes c after a read error or a close from the server.
func (c *RawConn) fail(err error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		if !c.paused {
			c.loop.del(c)
		}
		syscall.Close(c.fd)
	}
	c.mu.Unlock()
	c.end(err)
}
