package eio

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// waitFor bounds every wait for an event in these tests.
const waitFor = 10 * time.Second

const (
	sioPath = "/socket.io/"
	openPkt = `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	joinPkt = `40{"sid":"sock1"}`
	eventPk = `42["message","hi"]`
)

// fakeServer is a scripted Socket.IO server: each connection's upgrade
// request is checked, then the script plays the rest.
type fakeServer struct {
	url     string
	remotes chan string   // each connection's remote address
	next    chan struct{} // the test's go-ahead for scripts that await it
}

// srv is one connection of a fakeServer.
type srv struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	key  string
	p    *Poller // where the client's socket is (for sendByByte)
	fs   *fakeServer
	quit chan struct{} // closed when the test ends
	fd   int           // the client's socket, once found
}

// serve starts a fakeServer on 127.0.0.1 for a client on p; the test's
// cleanup closes its listener and connections and waits for its goroutines.
func serve(t *testing.T, p *Poller, script func(s *srv)) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, p, script)
}

// serveOn is serve on ln.
func serveOn(t *testing.T, ln net.Listener, p *Poller, script func(s *srv)) *fakeServer {
	fs := &fakeServer{url: "http://" + ln.Addr().String() + sioPath, remotes: make(chan string, 1024), next: make(chan struct{}, 1)}
	quit := make(chan struct{})
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		ln.Close()
		close(quit)
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			select {
			case fs.remotes <- c.RemoteAddr().String():
			default: // nobody looks at them all
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				s := &srv{t: t, c: c, r: bufio.NewReader(c), p: p, fs: fs, quit: quit, fd: -1}
				if s.readUpgrade() {
					script(s)
				}
			}()
		}
	}()
	return fs
}

// readUpgrade reads the client's upgrade request and checks it.
func (s *srv) readUpgrade() bool {
	req, err := http.ReadRequest(s.r)
	if err == io.EOF {
		return false // a client that gave up before asking
	}
	if err != nil {
		s.t.Errorf("server: read the upgrade request: %v", err)
		return false
	}
	s.key = req.Header.Get("Sec-WebSocket-Key")
	key, kerr := base64.StdEncoding.DecodeString(s.key)
	for _, bad := range []struct {
		is   bool
		what string
	}{
		{req.Method != "GET", "method " + req.Method},
		{req.RequestURI != sioPath+"?EIO=4&transport=websocket", "target " + req.RequestURI},
		{req.Proto != "HTTP/1.1" || req.Host == "", "proto " + req.Proto + ", host " + req.Host},
		{!strings.EqualFold(req.Header.Get("Upgrade"), "websocket"), "Upgrade: " + req.Header.Get("Upgrade")},
		{!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade"), "Connection: " + req.Header.Get("Connection")},
		{req.Header.Get("Sec-WebSocket-Version") != "13", "Sec-WebSocket-Version: " + req.Header.Get("Sec-WebSocket-Version")},
		{kerr != nil || len(key) != 16, fmt.Sprintf("Sec-WebSocket-Key %q: %d bytes, %v", s.key, len(key), kerr)},
	} {
		if bad.is {
			s.t.Errorf("server: bad upgrade request: %s", bad.what)
			return false
		}
	}
	return true
}

// head101 is the upgrade's answer.
func (s *srv) head101() string {
	h := sha1.Sum([]byte(s.key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
}

// frame is a server (unmasked) text frame.
func frame(pkt string) string {
	if len(pkt) < 126 {
		return string([]byte{0x81, byte(len(pkt))}) + pkt
	}
	return string([]byte{0x81, 126, byte(len(pkt) >> 8), byte(len(pkt))}) + pkt
}

// send writes parts in one write (errors are the client's going away).
func (s *srv) send(parts ...string) { _, _ = s.c.Write([]byte(strings.Join(parts, ""))) }

// sendByByte writes parts one byte per write, each read by the client on
// its own before the next is written: every read of the client is partial.
func (s *srv) sendByByte(parts ...string) {
	for _, b := range []byte(strings.Join(parts, "")) {
		if _, err := s.c.Write([]byte{b}); err != nil {
			s.t.Errorf("server: %v", err)
			return
		}
		s.waitClientRead()
	}
}

// waitClientRead waits until the client's socket holds no unread byte.
func (s *srv) waitClientRead() {
	deadline := time.Now().Add(waitFor)
	for s.fd < 0 { // the poller's socket whose local port is our peer's
		port := s.c.RemoteAddr().(*net.TCPAddr).Port
		for _, l := range s.p.loops {
			l.mu.RLock()
			for fd := range l.conns {
				if sa, err := syscall.Getsockname(int(fd)); err == nil {
					if a, ok := sa.(*syscall.SockaddrInet4); ok && a.Port == port {
						s.fd = int(fd)
					}
				}
			}
			l.mu.RUnlock()
		}
		if s.fd < 0 && !s.wait(deadline, "client socket on the poller") {
			return
		}
	}
	for {
		var n int32
		const fionread = 0x541b // SIOCINQ
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(s.fd), fionread, uintptr(unsafe.Pointer(&n)))
		if errno != 0 {
			s.t.Errorf("server: SIOCINQ: %v", errno)
			return
		}
		if n == 0 || !s.wait(deadline, "client read") {
			return
		}
	}
}

// wait yields, or fails the test past deadline.
func (s *srv) wait(deadline time.Time, what string) bool {
	if time.Now().After(deadline) {
		s.t.Errorf("server: no %s within %s", what, waitFor)
		return false
	}
	runtime.Gosched()
	return true
}

// recv reads one client frame, which must be masked, and unmasks it.
func (s *srv) recv() (op byte, payload string, err error) {
	var h [14]byte
	if _, err = io.ReadFull(s.r, h[:2]); err != nil {
		return 0, "", err
	}
	if h[1]&0x80 == 0 {
		return 0, "", errors.New("unmasked client frame")
	}
	n, ext := uint64(h[1]&0x7f), 0
	switch n {
	case 126:
		ext = 2
	case 127:
		ext = 8
	}
	if _, err = io.ReadFull(s.r, h[2:2+ext+4]); err != nil {
		return 0, "", err
	}
	switch ext {
	case 2:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = binary.BigEndian.Uint64(h[2:])
	}
	key := h[2+ext : 2+ext+4]
	b := make([]byte, n)
	if _, err = io.ReadFull(s.r, b); err != nil {
		return 0, "", err
	}
	for i := range b {
		b[i] ^= key[i&3]
	}
	return h[0] & 0x0f, string(b), nil
}

// expect reads the client's next frame, which must be the text pkt.
func (s *srv) expect(pkt string) bool {
	op, got, err := s.recv()
	if err != nil || op != opText || got != pkt {
		s.t.Errorf("server read op %d %q (%v), want text %q", op, got, err, pkt)
		return false
	}
	return true
}

// await waits for the test's go-ahead (fakeServer.next).
func (s *srv) await() bool {
	select {
	case <-s.fs.next:
		return true
	case <-s.quit:
		return false
	}
}

// recorder records a dial's callbacks.
type recorder struct {
	dones, closes, events atomic.Int32
	done                  chan dialResult
	event                 chan string
	closed                chan error
}

type dialResult struct {
	c   *RawConn
	err error
}

func newRecorder() *recorder {
	return &recorder{done: make(chan dialResult, 4), event: make(chan string, 4), closed: make(chan error, 4)}
}

func (r *recorder) onEvent(pkt []byte) {
	r.events.Add(1)
	select {
	case r.event <- string(pkt):
	default:
	}
}

func (r *recorder) onClose(err error) {
	r.closes.Add(1)
	select {
	case r.closed <- err:
	default:
	}
}

func (r *recorder) onDone(c *RawConn, err error) {
	r.dones.Add(1)
	select {
	case r.done <- dialResult{c, err}:
	default:
	}
}

// dial starts a dial recorded by a new recorder; a failed Dial fails the test.
func dial(t *testing.T, p *Poller, url, nsp string, opt DialOptions) *recorder {
	t.Helper()
	tg, err := NewTarget(url, nsp)
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	if err := p.Dial(tg, opt, r.onEvent, r.onClose, r.onDone); err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return r
}

// joined waits for r's dial to succeed; the test's cleanup closes the conn.
func (r *recorder) joined(t *testing.T) *RawConn {
	t.Helper()
	res := within(t, r.done, "done")
	if res.err != nil || res.c == nil {
		t.Fatalf("done(%v, %v), want a conn", res.c, res.err)
	}
	t.Cleanup(func() { res.c.Close() })
	return res.c
}

// within receives from ch, or fails the test after waitFor.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatalf("no %s within %s", what, waitFor)
		var zero T
		return zero
	}
}

func newPoller(t *testing.T, loops int) *Poller {
	p, err := NewPoller(loops)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// opened writes the 101 and OPEN in one write and reads CONNECT.
func (s *srv) opened(connect string) bool {
	s.send(s.head101(), frame(openPkt))
	return s.expect(connect)
}

// afterJoin ends the joining scripts: on the test's go-ahead, an event,
// then the connection closes.
func (s *srv) afterJoin() {
	if s.await() {
		s.send(frame(eventPk))
	}
}

// joining is the usual server: the session joins, then afterJoin.
func joining(s *srv) {
	if s.opened("40") {
		s.send(frame(joinPkt))
		s.afterJoin()
	}
}

// checkSession checks a joined session of a joining-like script: its ids,
// an event, then the server's close; done, onEvent and onClose once each.
func checkSession(t *testing.T, p *Poller, fs *fakeServer, r *recorder, c *RawConn) {
	t.Helper()
	if c.SID != "abc" || c.SocketID != "sock1" {
		t.Errorf("SID %q, SocketID %q; want abc, sock1", c.SID, c.SocketID)
	}
	fs.next <- struct{}{}
	if pkt := within(t, r.event, "event"); pkt != eventPk {
		t.Errorf("onEvent(%q), want %q", pkt, eventPk)
	}
	if err := within(t, r.closed, "onClose"); !errors.Is(err, ErrClosed) {
		t.Errorf("onClose(%v), want ErrClosed", err)
	}
	p.Close() // no callback after this
	if d, cl, ev := r.dones.Load(), r.closes.Load(), r.events.Load(); d != 1 || cl != 1 || ev != 1 {
		t.Errorf("done called %d times, onClose %d, onEvent %d; want once each", d, cl, ev)
	}
}

func TestDialJoins(t *testing.T) {
	for _, tc := range []struct {
		name       string
		nsp        string
		opt        DialOptions
		wantRemote string
		script     func(s *srv)
	}{
		{"joins", "/", DialOptions{}, "127.0.0.1", func(s *srv) {
			s.send(s.head101()) // and OPEN in a write of its own
			s.send(frame(openPkt))
			if s.expect("40") {
				s.send(frame(joinPkt))
				s.afterJoin()
			}
		}},
		{"namespace", "/n1", DialOptions{}, "127.0.0.1", func(s *srv) {
			if s.opened("40/n1,") {
				s.send(frame(`40/n1,{"sid":"sock1"}`))
				s.afterJoin()
			}
		}},
		{"byte by byte", "/", DialOptions{}, "127.0.0.1", func(s *srv) {
			s.sendByByte(s.head101(), frame(openPkt))
			if s.expect("40") {
				s.sendByByte(frame(joinPkt))
				if s.await() {
					s.sendByByte(frame(eventPk))
				}
			}
		}},
		{"all in one write", "/", DialOptions{}, "127.0.0.1", func(s *srv) {
			if s.opened("40") {
				// The event comes with CONNECT's answer, and half of
				// the next frame: a ping the client answers once joined.
				s.send(frame(joinPkt), frame(eventPk), frame("2")[:1])
				s.send(frame("2")[1:])
				s.expect("3")
			}
		}},
		{"ping before CONNECT's answer", "/", DialOptions{}, "127.0.0.1", func(s *srv) {
			if s.opened("40") {
				s.send(frame("2"))
				if s.expect("3") {
					s.send(frame(joinPkt))
					s.afterJoin()
				}
			}
		}},
		{"source address", "/", DialOptions{Src: net.IPv4(127, 0, 0, 2)}, "127.0.0.2", joining},
		{"receive buffer", "/", DialOptions{RcvBuf: 8192}, "127.0.0.1", joining},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(t, 1)
			fs := serve(t, p, tc.script)
			r := dial(t, p, fs.url, tc.nsp, tc.opt)
			c := r.joined(t)
			if host, _, _ := net.SplitHostPort(within(t, fs.remotes, "connection")); host != tc.wantRemote {
				t.Errorf("server saw the client at %s, want %s", host, tc.wantRemote)
			}
			if tc.opt.RcvBuf > 0 { // Linux reports twice the size set (its bookkeeping)
				if got, err := syscall.GetsockoptInt(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF); err != nil || got != 2*tc.opt.RcvBuf {
					t.Errorf("SO_RCVBUF = %d, %v; want %d", got, err, 2*tc.opt.RcvBuf)
				}
			}
			checkSession(t, p, fs, r, c)
		})
	}
}

func TestDialRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(s *srv)
		want   string
	}{
		{"400", func(s *srv) { s.send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") },
			"upgrade refused: HTTP/1.1 400 Bad Request"},
		{"CONNECT refused", func(s *srv) {
			if s.opened("40") {
				s.send(frame(`44{"message":"no"}`))
			}
		}, `CONNECT refused: {"message":"no"}`},
		{"closed after 101", func(s *srv) { s.send(s.head101()) }, "read OPEN: EOF"},
		{"closed after CONNECT", func(s *srv) { s.opened("40") }, "read CONNECT: EOF"},
		{"close frame", func(s *srv) {
			if s.opened("40") {
				s.send("\x88\x00")
			}
		}, "read CONNECT: " + ErrClosed.Error()},
		{"not OPEN", func(s *srv) { s.send(s.head101(), frame(eventPk)) }, "want OPEN"},
		{"OPEN without sid", func(s *srv) { s.send(s.head101(), frame(`0{"upgrades":[]}`)) }, "no sid"},
		{"endless head", func(s *srv) { s.send("HTTP/1.1 101 Switching Protocols\r\nX-Pad: " + strings.Repeat("a", 5000)) },
			"upgrade: more than 4096 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(t, 1)
			fs := serve(t, p, tc.script)
			r := dial(t, p, fs.url, "/", DialOptions{})
			res := within(t, r.done, "done")
			if res.c != nil || res.err == nil || !strings.Contains(res.err.Error(), tc.want) {
				t.Errorf("done(%v, %v), want an error with %q", res.c, res.err, tc.want)
			}
			p.expireDials(time.Now().Add(time.Hour), errors.New("no session within 1s")) // no longer the sweeper's
			p.Close()                                                                    // no callback after this
			if d, cl, ev := r.dones.Load(), r.closes.Load(), r.events.Load(); d != 1 || cl != 0 || ev != 0 {
				t.Errorf("done called %d times, onClose %d, onEvent %d; want 1, 0, 0", d, cl, ev)
			}
		})
	}
}

// TestDialFails: a dial that cannot start fails, by Dial's error or done's.
func TestDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free := "http://" + ln.Addr().String() + sioPath
	ln.Close()
	for _, tc := range []struct {
		name string
		url  func(t *testing.T, p *Poller) string
		opt  DialOptions
	}{
		{"nothing listening", func(*testing.T, *Poller) string { return free }, DialOptions{}},
		{"source not local", func(t *testing.T, p *Poller) string { return serve(t, p, func(*srv) {}).url }, DialOptions{Src: net.IPv4(192, 0, 2, 1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPoller(t, 1)
			tg, err := NewTarget(tc.url(t, p), "/")
			if err != nil {
				t.Fatal(err)
			}
			r := newRecorder()
			if err := p.Dial(tg, tc.opt, r.onEvent, r.onClose, r.onDone); err == nil {
				if res := within(t, r.done, "done"); res.c != nil || res.err == nil {
					t.Fatalf("done(%v, %v), want an error", res.c, res.err)
				}
			}
			p.Close()
			if d, cl := r.dones.Load(), r.closes.Load(); d > 1 || cl != 0 {
				t.Errorf("done called %d times, onClose %d", d, cl)
			}
		})
	}
}

func TestDialExpires(t *testing.T) {
	p := newPoller(t, 2)
	hungUp := make(chan error, 1)
	silent := serve(t, p, func(s *srv) { // reads nothing more until the client hangs up
		_, err := s.r.ReadByte()
		hungUp <- err
	})
	joins := serve(t, p, joining)
	rj := dial(t, p, joins.url, "/", DialOptions{})
	c := rj.joined(t)
	rs := dial(t, p, silent.url, "/", DialOptions{})

	p.expireDials(time.Now().Add(time.Hour), errors.New("no session within 1s")) // as if an hour had passed
	if res := within(t, rs.done, "done"); res.c != nil || res.err == nil || !strings.Contains(res.err.Error(), "no session within 1s") {
		t.Errorf("expired dial: done(%v, %v), want an error with %q", res.c, res.err, "no session within 1s")
	}
	if err := within(t, hungUp, "hang-up"); err == nil {
		t.Errorf("the expired dial's socket is still open")
	}
	p.expireDials(time.Now().Add(time.Hour), errors.New("no session within 1s")) // again: nothing left to expire
	checkSession(t, p, joins, rj, c)                                             // the joined session was not affected
	if d, cl, ev := rs.dones.Load(), rs.closes.Load(), rs.events.Load(); d != 1 || cl != 0 || ev != 0 {
		t.Errorf("expired dial: done called %d times, onClose %d, onEvent %d; want 1, 0, 0", d, cl, ev)
	}
}

// TestDialSweeper: the poller's own sweeper ends a dial past DialTimeout.
func TestDialSweeper(t *testing.T) {
	p := newPoller(t, 1)
	p.DialTimeout = 20 * time.Millisecond
	fs := serve(t, p, func(s *srv) { <-s.quit })
	r := dial(t, p, fs.url, "/", DialOptions{})
	if res := within(t, r.done, "done"); res.c != nil || res.err == nil || !strings.Contains(res.err.Error(), "no session within 20ms") {
		t.Errorf("done(%v, %v), want an error with %q", res.c, res.err, "no session within 20ms")
	}
}

// TestDialSlowConnect: while the connect waits (the listener's accept queue
// is full, so its SYN is dropped and resent after a second), the upgrade
// request waits for EPOLLOUT.
func TestDialSlowConnect(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // an accept queue of one
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	filler, err := net.Dial("tcp", ln.Addr().String()) // fills the queue
	if err != nil {
		t.Fatal(err)
	}
	filler.Close() // accepted later, it reads EOF
	p := newPoller(t, 1)
	r := dial(t, p, "http://"+ln.Addr().String()+sioPath, "/", DialOptions{})
	fs := serveOn(t, ln, p, joining)
	checkSession(t, p, fs, r, r.joined(t))
}

// TestDialMany keeps conc dials in flight, each done starting the next (as
// bench/loadgen's rampOnPoller does); every session must join, with its own
// ids (no answer crossed to another connection). The dials share one
// Target, from several goroutines (-race checks that they may).
func TestDialMany(t *testing.T) {
	const total, conc = 600, 200
	p := newPoller(t, 2)
	var n atomic.Int32
	fs := serve(t, p, func(s *srv) {
		i := n.Add(1)
		s.send(s.head101(), frame(fmt.Sprintf(`0{"sid":"e%d","upgrades":[]}`, i)))
		if s.expect("40") {
			s.send(frame(fmt.Sprintf(`40{"sid":"s%d"}`, i)))
			<-s.quit
		}
	})
	var (
		mu      sync.Mutex
		conns   []*RawConn
		errs    []error
		started atomic.Int32
		ended   atomic.Int32
		all     = make(chan struct{})
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	tg, err := NewTarget(fs.url, "/")
	if err != nil {
		t.Fatal(err)
	}
	var start func()
	end := func(c *RawConn, err error) {
		mu.Lock()
		if err != nil {
			errs = append(errs, err)
		} else {
			conns = append(conns, c)
		}
		mu.Unlock()
		if ended.Add(1) == total {
			close(all)
		}
		start()
	}
	start = func() {
		if started.Add(1) > total {
			return
		}
		if err := p.Dial(tg, DialOptions{}, func([]byte) {}, func(error) {}, end); err != nil {
			end(nil, err)
		}
	}
	for range conc {
		start()
	}
	within(t, all, "end of every dial")
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("%d of %d dials failed, the first: %v", len(errs), total, errs[0])
	}
	seen := map[string]bool{}
	for _, c := range conns {
		if c.SID[1:] != c.SocketID[1:] || seen[c.SID] {
			t.Fatalf("conn with SID %q, SocketID %q (one of %d)", c.SID, c.SocketID, len(seen))
		}
		seen[c.SID] = true
	}
}
