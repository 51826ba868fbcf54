//go:build linux

// Command floor is the benchmark's floor (docs/BENCHMARKS.md): the least a
// broadcasting server can do per delivery. It speaks just enough of the
// WebSocket upgrade, Engine.IO OPEN and Socket.IO CONNECT for the load
// generator's clients to join, then, for every `42["user-message",X]` a
// client sends, builds ONE frame `42["message",X]` and writes it to every
// connection with one non-blocking write(2) each, on the goroutine that read
// the message, with epoll for readiness. No sessions, no pings, no
// namespaces, no rooms, no acknowledgements, no queues beyond the bytes a
// socket would not take yet, no limits: the kernel's cost per recipient plus
// the minimum of user-space work around it.
//
//	floor -addr 127.0.0.1:9000
//
// It is a measuring stick, not a server: do not expose it.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// conn is one client: its socket (non-blocking, in the epoll set), what it
// sent that does not make a frame yet, and what it would not take yet.
type conn struct {
	fd      int
	in      []byte
	pending []byte // unsent bytes; while not empty, EPOLLOUT is on
}

// floor is the set of connections, shared by the accept goroutine (adds)
// and the event loop (everything else).
type floor struct {
	epfd  int
	mu    sync.Mutex
	conns map[int]*conn
	list  []*conn // broadcast order; rebuilt when a connection goes
	buf   [64 << 10]byte
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if err := serve(ln); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

// serve starts the event loop and accepts ln's connections, both on
// goroutines of their own.
func serve(ln net.Listener) error {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	f := &floor{epfd: epfd, conns: map[int]*conn{}}
	go f.accept(ln)
	go f.loop()
	return nil
}

func (f *floor) accept(ln net.Listener) {
	var id int
	for {
		nc, err := ln.Accept()
		if err != nil {
			log.Print(err)
			return
		}
		id++
		go func(id int) {
			if err := f.join(nc, strconv.Itoa(id)); err != nil {
				nc.Close()
			}
		}(id)
	}
}

// join performs the upgrade and the opening on nc (blocking, bounded by a
// deadline), then moves its socket into the epoll set.
func (f *floor) join(nc net.Conn, sid string) error {
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return err
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if key == "" {
		_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		return errors.New("not a WebSocket upgrade")
	}
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
	open := `0{"sid":"` + sid + `","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
	if _, err := nc.Write(appendFrame([]byte(resp), []byte(open))); err != nil {
		return err
	}
	// Wait for the client's CONNECT to "/" (40), answer it.
	var in []byte
	for {
		for {
			op, payload, n := parseFrame(in)
			if n == 0 {
				break
			}
			in = in[n:]
			if op == 0x1 && bytes.HasPrefix(payload, []byte("40")) {
				// Frames sent right behind CONNECT (the load generator
				// sends none: it waits for the answer) are kept, and
				// handled with the connection's next read.
				if n := br.Buffered(); n > 0 {
					b, _ := br.Peek(n)
					in = append(in, b...)
				}
				return f.add(nc, in, appendFrame(nil, []byte(`40{"sid":"s`+sid+`"}`)))
			}
		}
		chunk := make([]byte, 512)
		n, err := br.Read(chunk)
		in = append(in, chunk[:n]...)
		if err != nil {
			return err
		}
	}
}

// add detaches nc's socket from Go's poller (a duplicate, non-blocking),
// writes CONNECT's answer and adds it to the broadcasts' list in one step
// (a client that has its answer gets every broadcast that starts after,
// and none before the answer), then to the epoll set.
func (f *floor) add(nc net.Conn, in, answer []byte) error {
	sc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return err
	}
	fd, dupErr := -1, error(nil)
	if err := sc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return err
	}
	nc.Close()
	if dupErr != nil {
		return dupErr
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return err
	}
	c := &conn{fd: fd, in: in}
	f.mu.Lock()
	// A new socket's buffer takes the few bytes at once.
	if n, err := syscall.Write(fd, answer); n != len(answer) {
		f.mu.Unlock()
		syscall.Close(fd)
		return fmt.Errorf("write CONNECT's answer: %d of %d bytes, %v", n, len(answer), err)
	}
	f.conns[fd] = c
	f.list = append(f.list, c)
	f.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		f.drop(c)
		return err
	}
	return nil
}

// loop is the event loop: it reads what clients send and broadcasts.
func (f *floor) loop() {
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(f.epfd, events, -1)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			log.Fatal(err)
		}
		for _, ev := range events[:n] {
			f.mu.Lock()
			c := f.conns[int(ev.Fd)]
			f.mu.Unlock()
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				f.flush(c)
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				f.read(c)
			}
		}
	}
}

// rawIO is read(2) or write(2) (trap) on a non-blocking socket, without the
// scheduler's system-call bookkeeping (syscall.RawSyscall: the call does not
// wait, so the goroutine keeps its P), as our server makes them: the floor
// must not pay what a server need not.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var base unsafe.Pointer
	if len(b) > 0 {
		base = unsafe.Pointer(&b[0])
	}
	n, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(base), uintptr(len(b)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

// read drains c's socket and handles every complete frame.
func (f *floor) read(c *conn) {
	for {
		n, err := rawIO(syscall.SYS_READ, c.fd, f.buf[:])
		if n > 0 {
			c.in = append(c.in, f.buf[:n]...)
		}
		if err == syscall.EAGAIN {
			break
		}
		if n <= 0 {
			f.drop(c)
			return
		}
	}
	for {
		op, payload, n := parseFrame(c.in)
		if n == 0 {
			break
		}
		c.in = c.in[n:]
		switch op {
		case 0x1:
			if rest, ok := bytes.CutPrefix(payload, []byte(`42["user-message",`)); ok {
				f.broadcast(appendFrame(nil, append([]byte(`42["message",`), rest...)))
			}
		case 0x8:
			f.drop(c)
			return
		}
	}
	if len(c.in) == 0 {
		c.in = nil
	}
}

// broadcast writes frame to every connection: one write(2) each, or behind
// what a connection did not take yet.
func (f *floor) broadcast(frame []byte) {
	f.mu.Lock()
	list := f.list
	f.mu.Unlock()
	for _, c := range list {
		if c.fd < 0 {
			continue
		}
		if len(c.pending) > 0 {
			c.pending = append(c.pending, frame...)
			continue
		}
		n, err := rawIO(syscall.SYS_WRITE, c.fd, frame)
		if n == len(frame) {
			continue
		}
		if err != nil && err != syscall.EAGAIN {
			f.drop(c)
			continue
		}
		c.pending = append(c.pending, frame[max(n, 0):]...)
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLOUT, Fd: int32(c.fd)}
		_ = syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
	}
}

// flush writes what c did not take before.
func (f *floor) flush(c *conn) {
	n, err := rawIO(syscall.SYS_WRITE, c.fd, c.pending)
	if err != nil && err != syscall.EAGAIN {
		f.drop(c)
		return
	}
	c.pending = c.pending[max(n, 0):]
	if len(c.pending) == 0 {
		c.pending = nil
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(c.fd)}
		_ = syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
	}
}

// drop closes c (on the event loop, or in add before the loop saw it).
func (f *floor) drop(c *conn) {
	if c.fd < 0 {
		return
	}
	f.mu.Lock()
	delete(f.conns, c.fd)
	list := make([]*conn, 0, len(f.list))
	for _, o := range f.list {
		if o != c {
			list = append(list, o)
		}
	}
	f.list = list
	f.mu.Unlock()
	syscall.Close(c.fd) // also leaves the epoll set
	c.fd = -1
}

// appendFrame appends one final, unmasked text frame (server to client).
func appendFrame(dst, payload []byte) []byte {
	dst = append(dst, 0x81)
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, byte(n))
	case n < 1<<16:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// parseFrame reads one complete client frame at the start of b (masked, as
// clients must; unmasked in place) and returns its opcode, payload and
// length, or n == 0 when b does not hold a whole frame yet. The load
// generator sends no fragmented messages.
func parseFrame(b []byte) (op byte, payload []byte, n int) {
	if len(b) < 2 {
		return 0, nil, 0
	}
	op = b[0] & 0x0f
	masked := b[1]&0x80 != 0
	size, hdr := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil, 0
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil, 0
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	var key []byte
	if masked {
		if len(b) < hdr+4 {
			return 0, nil, 0
		}
		key, hdr = b[hdr:hdr+4], hdr+4
	}
	if uint64(len(b)-hdr) < size {
		return 0, nil, 0
	}
	payload = b[hdr : hdr+int(size)]
	if masked {
		for i := range payload {
			payload[i] ^= key[i&3]
		}
	}
	return op, payload, hdr + int(size)
}
