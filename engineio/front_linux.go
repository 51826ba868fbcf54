package engineio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sync"
	"time"
)

// frontConn is a new connection of a Front, on the epoll engine until its
// first request's head has arrived: then it is served (a WebSocket
// handshake, on a reader goroutine) or given to net/http.
//
// The reader (one at a time, rstate) owns in; mu guards the end (closed),
// which the reader and the front's sweep (the deadline) race for.
type frontConn struct {
	evState
	f        *Front
	e        *epoll
	fc       *fdConn       // a copy of nc's socket, or ac's descriptor, in the epoll set
	nc       net.Conn      // the listener's connection, still open
	ac       *acceptedConn // nc's, if an AcceptListener accepted it: its descriptor is lent to fc
	in       []byte
	deadline int64 // monoNow of HeaderTimeout's end: Front.sweep closes it then

	mu     sync.Mutex
	closed bool // served, given back, or closed
}

func (fr *frontConn) evs() *evState { return &fr.evState }
func (fr *frontConn) runFlush()     {} // nothing is written through the engine

// start puts a new connection on the epoll engine, for its head.
func (f *Front) start(nc net.Conn) {
	e, _ := epollEngine().(*epoll)
	if e == nil {
		f.HandBack.give(nc)
		return
	}
	var fc *fdConn
	ac := acceptedOf(nc)
	if ac != nil {
		if fd := ac.lend(); fd >= 0 {
			fc = &fdConn{fd: fd} // no copy: the socket is in no other poller
		} else {
			ac = nil
		}
	}
	if fc == nil {
		var err error
		if fc, _, err = dupSocket(nc); err != nil {
			f.HandBack.give(nc)
			return
		}
	}
	// As net/http's ReadHeaderTimeout, from the start of the wait.
	fr := &frontConn{f: f, e: e, fc: fc, nc: nc, ac: ac, deadline: monoNow() + int64(f.HeaderTimeout)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		fr.releaseFD()
		_ = nc.Close()
		return
	}
	f.conns[fr] = struct{}{}
	f.mu.Unlock()
	if err := e.add(fr, fc); err != nil {
		if f.Log != nil {
			f.Log.Warn("front door: cannot watch a new connection; closed", "remote", nc.RemoteAddr().String(), "err", err)
		}
		fr.close()
	}
}

// runRead reads the head, on a reader goroutine, and serves it once it has
// all arrived.
func (fr *frontConn) runRead(buf []byte) {
	for {
		n, err := fr.fc.read(buf[:min(len(buf), fr.f.MaxHeaderBytes+1-len(fr.in))])
		if n > 0 {
			scanned := len(fr.in)
			fr.in = append(fr.in, buf[:n]...)
			if end := headEnd(fr.in, scanned); end >= 0 {
				fr.rstate.Store(readDead)
				fr.serve(end)
				return
			}
			if len(fr.in) > fr.f.MaxHeaderBytes || bareLF(fr.in, scanned) {
				// net/http answers 431, or reads a head with bare LFs.
				fr.rstate.Store(readDead)
				fr.giveBack()
				return
			}
			if n == len(buf) || fr.hupped() {
				continue
			}
			err = errWouldBlock
		}
		if errors.Is(err, errWouldBlock) {
			if fr.rstate.CompareAndSwap(readRunning, readIdle) {
				return
			}
			if !fr.rstate.CompareAndSwap(readAgain, readRunning) {
				return
			}
			continue
		}
		// The client went away before its head, or an error: as net/http,
		// nothing to answer.
		fr.rstate.Store(readDead)
		fr.close()
		return
	}
}

// serve serves the head in[:end]: a WebSocket handshake on one of the
// front's paths is served here, anything else by net/http.
func (fr *frontConn) serve(end int) {
	var h upgradeHead
	if end > fr.f.MaxHeaderBytes || !parseUpgradeHead(fr.in, end, &h) || !fr.f.ours(h.path) {
		fr.giveBack()
		return
	}
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		fr.giveBack() // net/http refuses it
		return
	}
	if !fr.leave(false) {
		return // the deadline passed meanwhile
	}
	f, nc := fr.f, fr.nc
	f.served.Add(1)
	ctx := context.WithValue(context.Background(), http.LocalAddrContextKey, nc.LocalAddr())
	if f.ConnContext != nil {
		ctx = f.ConnContext(ctx, nc)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := (&http.Request{
		Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h.header, Body: http.NoBody, Host: h.host, RequestURI: h.target,
		RemoteAddr: nc.RemoteAddr().String(),
	}).WithContext(ctx)
	w := &frontWriter{fr: fr, rest: fr.in[end:], header: make(http.Header, 4)}
	fr.in = nil
	// Told only of the connections it serves: one given to net/http has
	// net/http's states.
	fr.tell(http.StateNew, http.StateActive)
	ok := w.run(r)
	if w.hijacked {
		return // the socket's copy is the hijacked connection's (frontHijacked)
	}
	fr.releaseFD()
	if !ok {
		fr.end(http.StateClosed) // as net/http, after a panic
		return
	}
	w.finish()
}

// releaseFD takes the socket's copy out of the epoll set and closes it
// (nc keeps the socket open), or gives the descriptor back to the
// acceptedConn that lent it.
func (fr *frontConn) releaseFD() {
	fr.e.remove(fr, fr.fc)
	if fr.ac != nil {
		fr.fc.detach()
		fr.ac.unlend()
		return
	}
	fr.fc.close()
}

// leave ends the wait for the head, unless the connection was closed
// meanwhile (its deadline); it reports whether it did. With release, the
// socket's copy is taken out of the epoll set and closed; without, it
// stays there, for the request's handler to take (frontHijacked).
func (fr *frontConn) leave(release bool) bool {
	fr.mu.Lock()
	if fr.closed {
		fr.mu.Unlock()
		return false
	}
	fr.closed = true
	fr.mu.Unlock()
	if release {
		fr.releaseFD()
	}
	fr.f.forget(fr)
	return true
}

// giveBack gives the connection to net/http with what was read of it.
func (fr *frontConn) giveBack() {
	if !fr.leave(true) {
		return
	}
	fr.f.given.Add(1)
	fr.f.HandBack.give(&returnedConn{Conn: fr.nc, acct: fr.nc, pre: fr.in})
}

// close closes the connection, once: the client went away, its head did
// not arrive in time, or the front closes.
func (fr *frontConn) close() {
	if fr.leave(true) {
		fr.end(http.StateNew, http.StateClosed)
	}
}

// tell tells the front's ConnState of the connection's states.
func (fr *frontConn) tell(states ...http.ConnState) {
	if cs := fr.f.ConnState; cs != nil {
		for _, st := range states {
			cs(fr.nc, st)
		}
	}
}

// end closes the listener's connection and tells states.
func (fr *frontConn) end(states ...http.ConnState) {
	_ = fr.nc.Close()
	fr.tell(states...)
}

// frontWriter is the http.ResponseWriter of a request the front serves:
// the handler hijacks the connection (a WebSocket), or its answer is
// written once it returns, and the connection closed.
type frontWriter struct {
	fr       *frontConn
	rest     []byte // what the client sent after the head
	header   http.Header
	status   int
	body     bytes.Buffer
	hijacked bool
}

func (w *frontWriter) Header() http.Header { return w.header }

func (w *frontWriter) WriteHeader(code int) {
	if w.status == 0 && !w.hijacked {
		w.status = code
	}
}

func (w *frontWriter) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if w.body.Len()+len(p) > maxFrontAnswer {
		return 0, errors.New("engineio: answer too long for the front door")
	}
	return w.body.Write(p)
}

// maxFrontAnswer bounds the answer of a handshake request the handler
// refuses (an error message).
const maxFrontAnswer = 64 << 10

// Hijack hands the connection to the handler: it then reads first what
// the client sent after the head.
func (w *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.status != 0 {
		return nil, nil, errors.New("engineio: hijack after the answer started")
	}
	w.hijacked = true
	w.fr.tell(http.StateHijacked)
	var pre []byte
	if len(w.rest) > 0 {
		pre = bytes.Clone(w.rest)
	}
	c := &frontHijacked{returnedConn: &returnedConn{Conn: w.fr.nc, acct: w.fr.nc, pre: pre}, fr: w.fr}
	if ac := w.fr.ac; ac != nil {
		// A hijacker that reads the connection (or asks for its NetConn)
		// takes the socket out of the epoll set, into Go's poller; the
		// engine takes it there instead (takeFD).
		ac.setReclaim(func() {
			if c.claim() {
				c.fr.releaseFD()
			}
		})
	}
	return c, bufio.NewReadWriter(bufio.NewReaderSize(c, 16), bufio.NewWriterSize(c, 16)), nil
}

// frontHijacked is the connection a handler hijacked from the front: the
// listener's, which reads first what the client sent after its head,
// with the front's copy of the socket still in the epoll set. The engine
// takes that copy for a WebSocket (epoll.wrap: takeFD), which saves
// making another; Close closes it if nothing took it.
type frontHijacked struct {
	*returnedConn
	fr    *frontConn
	mu    sync.Mutex
	taken bool
}

// takeFD takes the socket's copy (or the lent descriptor, now the
// taker's), still in the epoll set; nil if the connection was closed.
func (c *frontHijacked) takeFD() *fdConn {
	if !c.claim() {
		return nil
	}
	if c.fr.ac != nil {
		c.fr.ac.take()
	}
	return c.fr.fc
}

// claim ends the front's hold on the socket's copy, once; it reports
// whether this call did.
func (c *frontHijacked) claim() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken {
		return false
	}
	c.taken = true
	return true
}

func (c *frontHijacked) Close() error {
	if c.claim() {
		c.fr.releaseFD()
	}
	return c.returnedConn.Close()
}

// run runs the handler, as net/http does: a panic (but
// http.ErrAbortHandler) is logged, and closes the connection; it reports
// false then.
func (w *frontWriter) run(r *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if log := w.fr.f.Log; v != http.ErrAbortHandler && log != nil {
				log.Error("panic serving a WebSocket handshake", "remote", r.RemoteAddr, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
			ok = false
		}
	}()
	w.fr.f.Handler.ServeHTTP(w, r)
	return true
}

// finish writes the answer of a handler that did not hijack the
// connection, and closes it.
func (w *frontWriter) finish() {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	h := w.header
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if _, ok := h["Content-Type"]; !ok && w.body.Len() > 0 {
		h.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	resp := &http.Response{
		StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: h,
		Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Close: true,
	}
	nc := w.fr.nc
	_ = nc.SetWriteDeadline(time.Now().Add(w.fr.f.HeaderTimeout))
	bw := bufio.NewWriterSize(nc, 512)
	if resp.Write(bw) != nil || bw.Flush() != nil {
		w.fr.end(http.StateClosed)
		return
	}
	// As net/http's closeWriteAndWait: our side ends first, and the close
	// waits a little, so that what the client sent and we did not read
	// does not turn the close into a reset that could destroy the answer
	// before the client has read it.
	if tc, isTLS := liveTCP(nc); tc != nil && !isTLS {
		_ = tc.CloseWrite()
		time.AfterFunc(rstAvoidanceDelay, func() { w.fr.end(http.StateClosed) })
		return
	}
	w.fr.end(http.StateClosed)
}

// rstAvoidanceDelay is how long a refused handshake's connection stays
// open, its answer sent and our side shut (net/http's is the same).
const rstAvoidanceDelay = 500 * time.Millisecond
