package engineio

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Front serves the new connections of a listener on the epoll engine
// until their first request's head has arrived: a WebSocket handshake on
// one of Paths is served by Handler on one of the engine's reader
// goroutines, without net/http's per-connection goroutine, buffers and
// parsing; every other connection is given to net/http through HandBack,
// with the bytes already read, for net/http to serve with all of its
// rules. Linux only; elsewhere every connection goes to net/http.
//
// A handshake the front serves gets an *http.Request as net/http would
// make it (its context has LocalAddrContextKey and what ConnContext adds;
// not ServerContextKey), and a ResponseWriter that can Hijack the
// connection; an answer the handler writes instead (a refusal) is written
// with "Connection: close" once the handler returns, and the connection
// closed. Only the strict subset of HTTP/1.1 that WebSocket clients send
// is taken (see parseUpgradeHead); anything unusual goes to net/http.
//
// Goroutines: Serve's caller accepts (and puts each connection in the
// epoll set, or gives it to net/http); the engine's readers read heads and
// run Handler; one sweep goroutine per Serve closes the connections whose
// head is late. mu guards conns (the connections waiting for their head)
// and closed; Handler never runs under it.
type Front struct {
	// Handler serves the handshakes (the http.Server's Handler). Required.
	Handler http.Handler
	// HandBack receives every other connection; the http.Server serves
	// it. Required.
	HandBack *HandBack
	// Paths are the path prefixes whose WebSocket handshakes the front
	// serves (the engine's path, "/socket.io/").
	Paths []string
	// HeaderTimeout bounds the arrival of the first head, from the
	// connection's accept (http.Server's ReadHeaderTimeout). Defaults to 10
	// seconds.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds the head; a longer one goes to net/http (which
	// answers 431). Defaults to 64 KiB.
	MaxHeaderBytes int
	// ConnContext and ConnState are as http.Server's, for the connections
	// the front serves (ConnState: StateNew, StateActive, then
	// StateHijacked or StateClosed) or closes (StateNew, StateClosed); one
	// given to net/http has net/http's only.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	ConnState   func(c net.Conn, state http.ConnState)
	// Direct, if set, picks connections that go to net/http at once.
	Direct func(c net.Conn) bool
	// Log receives the handlers' panics; nil logs nothing.
	Log *slog.Logger

	served, given atomic.Uint64

	mu     sync.Mutex
	conns  map[*frontConn]struct{}
	closed bool
}

// Serve accepts ln's connections until ln fails (is closed), then closes
// the connections whose head has not arrived, and returns the error.
// Temporary accept errors (too many open files) are waited out, as
// http.Server does.
func (f *Front) Serve(ln net.Listener) error {
	if f.HeaderTimeout <= 0 {
		f.HeaderTimeout = 10 * time.Second
	}
	if f.MaxHeaderBytes <= 0 {
		f.MaxHeaderBytes = 64 << 10
	}
	f.mu.Lock()
	f.conns = make(map[*frontConn]struct{})
	f.mu.Unlock()
	stop := make(chan struct{})
	defer close(stop)
	go f.sweep(stop)
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			f.close()
			return err
		}
		delay = 0
		if f.Direct != nil && f.Direct(nc) {
			f.HandBack.give(nc)
			continue
		}
		f.start(nc)
	}
}

// ours reports whether path is under one of f.Paths.
func (f *Front) ours(path string) bool {
	for _, p := range f.Paths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func (f *Front) forget(fr *frontConn) {
	f.mu.Lock()
	delete(f.conns, fr)
	f.mu.Unlock()
}

// sweep closes, every tenth of HeaderTimeout, the connections whose head
// has not arrived within HeaderTimeout (one goroutine for them all, rather
// than a timer each: a timer costs a tenth of a handshake's CPU), until
// stop is closed.
func (f *Front) sweep(stop <-chan struct{}) {
	t := time.NewTicker(f.HeaderTimeout / 10)
	defer t.Stop()
	var late []*frontConn
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := monoNow()
		f.mu.Lock()
		for fr := range f.conns {
			if fr.deadline <= now {
				late = append(late, fr)
			}
		}
		f.mu.Unlock()
		for i, fr := range late {
			fr.close()
			late[i] = nil
		}
		late = late[:0]
	}
}

// close closes the connections waiting for their head; none is taken
// after.
func (f *Front) close() {
	f.mu.Lock()
	f.closed = true
	all := slices.Collect(maps.Keys(f.conns))
	f.mu.Unlock()
	for _, fr := range all {
		fr.close()
	}
}

// Counts returns the handshakes the front served, and the connections it
// gave to net/http.
func (f *Front) Counts() (served, given uint64) { return f.served.Load(), f.given.Load() }
