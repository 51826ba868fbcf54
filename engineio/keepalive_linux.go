package engineio

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// pollConn is a keep-alive connection whose polling requests the server
// serves itself (Options.KeepAlive), on the epoll engine: the reader (one
// at a time, on the engine's reader goroutines) reads requests and serves
// them, running the session's handlers for a POST as a WebSocket's reader
// does; a GET with nothing to answer registers the connection as its
// session's pending poll (pollWaiter) and costs no goroutine until the
// session wakes it, and the answer is then built and written by a flush
// worker. Writes are non-blocking; what the socket does not take waits for
// EPOLLOUT.
//
// Lock order: a session's mu, then pollConn.mu.
type pollConn struct {
	evState
	srv *Server
	e   *epoll
	fc  *fdConn
	// nc is the connection net/http served, its own descriptor closed at
	// the takeover: kept open for an admission control that counts it
	// until it is closed, and carried by the connection given back for a
	// request the fast path does not take (returnedConn). obs is nc's
	// ConnObserver, or nil.
	nc  net.Conn
	obs ConnObserver
	ka  *KeepAlive

	// What the handlers in front of the engine looked at in the requests
	// net/http served on the connection, and what they added to their
	// answers (see KeepAlive). Read-only.
	ids []kaIdentity

	timer *time.Timer // the deadline's (see setPhaseLocked)

	mu sync.Mutex
	// in is what was read and not yet served; the reader appends to it
	// and consumes it, others only read its length.
	in      []byte
	scanned int    // how much of in headEnd has searched for the head's end
	extra   []byte // the header lines of the request being served (its identity's)

	busy bool     // a request was taken; its answer is not written yet
	wait *Session // the session whose GET waits for something to answer
	gzip bool     // the pending GET's client accepts gzip

	// a POST whose body is arriving
	post     *Session
	postHead int // its head's length
	postLen  int // its body's
	postBin  bool

	// the answer being written, from off
	out    []byte
	off    int
	outBuf *buffer // out's, pooled
	// serving a session's request, for obs (see applyServing): what the
	// last change of state wants and what obs was told
	serveWant, serveApplied bool
	applying                atomic.Bool
	outSess                 *Session // the poll the answer is of (finished once it is written, with outLast)
	outLast                 bool
	shutting                bool // the connection closes once its answer is written

	phase    int   // for the deadline
	deadline int64 // monoNow of the deadline; 0: none (a GET waits)
	armed    bool  // timer is set
	due      int64 // monoNow of when the armed timer fires
	closed   bool
}

// The phases of a connection, for its deadline.
const (
	phaseIdle  = iota // waiting for a request: KeepAlive.IdleTimeout
	phaseHead         // a request's head is arriving: KeepAlive.HeaderTimeout
	phaseBody         // a POST's body is arriving: the heartbeat's pingInterval + pingTimeout, as servePost
	phaseWait         // a GET waits: no deadline, the heartbeat wakes it
	phaseWrite        // an answer is being written: pingTimeout, as writePayload
)

// keepAlive takes over r's connection after its answer was written, if
// the keep-alive fast path may serve its later requests (see KeepAlive).
// It runs at the end of a polling request net/http served; poll tells a
// GET from a POST whose body was read to its end.
func (s *Session) keepAlive(w http.ResponseWriter, r *http.Request, poll bool) {
	srv := s.srv
	ka := srv.opts.KeepAlive
	e, ok := srv.io.(*epoll)
	if ka == nil || !ok || !ka.HandBack.open() || r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.Close || r.TLS != nil ||
		srv.opts.Headers != nil || s.pl == nil || s.pl.jsonp != nil || srv.shutting.Load() || len(r.Header["Upgrade"]) > 0 {
		return
	}
	if poll && srv.opts.InitialHeaders != nil && parseQuery(r.URL.RawQuery).sid == "" {
		return // a handshake's answer has InitialHeaders' headers, which later answers must not
	}
	path, _, _ := strings.Cut(r.RequestURI, "?")
	if !strings.HasPrefix(path, "/") {
		return
	}
	if _, ok := w.Header()["Content-Length"]; !ok {
		// An answer without a Content-Length (writePayload's gzip) is
		// chunked once flushed, and its last chunk is written only when the
		// handler returns: never, for a connection hijacked here. net/http
		// ends it; a later request of the connection may be taken over.
		return
	}
	extra, ok := outerHeaders(w.Header())
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	nc, brw, err := rc.Hijack()
	if err != nil {
		return
	}
	in := unread(nc, brw.Reader)
	fc, tc, err := dupSocket(nc)
	if err != nil {
		srv.log.Debug("keep-alive takeover failed", "remote", r.RemoteAddr, "err", err)
		_ = nc.Close()
		return
	}
	// The copy keeps the socket open; closing the connection's own
	// descriptor takes the socket out of Go's network poller, which would
	// otherwise be woken by every request too. nc (the listener's, which
	// counts it) stays open until the connection ends: its Close then only
	// releases the count.
	_ = tc.Close()
	id := kaIdentity{path: path, host: r.Host, extra: extra}
	if v := r.Header["Origin"]; len(v) > 0 {
		id.origin, id.hasOrigin = v[0], true
	}
	var known []kaIdentity
	if back, ok := nc.(*returnedConn); ok {
		back.mu.Lock()
		known = back.ids
		back.mu.Unlock()
	}
	pc := &pollConn{
		srv: srv, e: e, fc: fc, nc: nc, ka: ka,
		ids: addIdentity(known, id), in: in,
	}
	pc.obs, _ = nc.(ConnObserver)
	if pc.obs != nil {
		pc.obs.ServingSession(false)
	}
	if !srv.addPollConn(pc) {
		fc.close()
		_ = nc.Close()
		return
	}
	pc.mu.Lock()
	pc.setPhaseLocked(phaseIdle)
	pc.mu.Unlock()
	if err := e.add(pc, fc); err != nil {
		pc.shut()
		return
	}
	if len(in) > 0 {
		e.readable(pc)
	}
}

// outerHeaders encodes the header lines of an answer that the engine did
// not set (the handlers' in front of it: CORS), as the fast path adds them
// to its answers; ok is false if one cannot be written as it is.
func outerHeaders(h http.Header) (b []byte, ok bool) {
	for k, vs := range h {
		switch k {
		case "Content-Type", "Cache-Control", "Date", "Content-Length", "Content-Encoding", "Set-Cookie":
			continue
		case "Connection", "Transfer-Encoding", "Trailer":
			return nil, false // an answer that closes, or is not the engine's usual one
		}
		if !validHeaderName(k) {
			return nil, false
		}
		for _, v := range vs {
			if k == "Vary" && v == "Accept-Encoding" {
				continue // the engine's, with gzip
			}
			if !validHeaderValue(v) {
				return nil, false
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return b, true
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isTokenChar(k[i]) {
			return false
		}
	}
	return true
}

// dupSocket detaches a copy of nc's socket from Go's network poller, as
// epoll.wrap does, and returns it with the connection whose descriptor
// it copied, which the caller closes; it fails for a connection that is
// not plain TCP.
func dupSocket(nc net.Conn) (*fdConn, *net.TCPConn, error) {
	tc, isTLS := liveTCP(nc)
	if tc == nil {
		if isTLS {
			return nil, nil, errors.New("TLS connection")
		}
		return nil, nil, fmt.Errorf("%T is not a TCP connection", nc)
	}
	fd, err := dupTCP(tc)
	if err != nil {
		return nil, nil, err
	}
	return &fdConn{fd: fd}, tc, nil
}

// fileConn makes a connection of Go's network poller on the socket of fd,
// which it closes, for net/http (a hand-back): without TCP keep-alive
// probes, as the listener's connections.
func fileConn(fd int) (net.Conn, error) {
	if fd < 0 {
		return nil, net.ErrClosed
	}
	f := os.NewFile(uintptr(fd), "keep-alive connection")
	c, err := net.FileConn(f) // a copy of fd, on Go's poller
	_ = f.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(false)
	}
	return c, err
}

func (pc *pollConn) evs() *evState { return &pc.evState }

// maxInput bounds what a connection's input buffer holds: a head and a
// body at their limits.
func (pc *pollConn) maxInput() int { return pc.ka.MaxHeaderBytes + int(pc.srv.opts.MaxBufferSize) }

// runRead reads the socket until it has nothing more, serving each
// complete request, on a reader goroutine. One runs at a time (rstate).
func (pc *pollConn) runRead(buf []byte) { pc.read(false, buf) }

// readOnLoop is runRead on the epoll loop's goroutine, which saves a
// reader's wake-up for the usual request, a GET that waits or is answered
// at once: it stops, leaving the rest to a reader (and reports false),
// where serving needs a goroutine that may block: a POST's handlers, a
// hand-back.
func (pc *pollConn) readOnLoop(buf []byte) bool { return pc.read(true, buf) }

// read is runRead's loop; it reports false if it stopped for a reader to
// go on (onLoop), with rstate still readRunning.
func (pc *pollConn) read(onLoop bool, buf []byte) bool {
	for {
		n, err := pc.fc.read(buf)
		if n > 0 {
			pc.mu.Lock()
			// Only while a request is being served: otherwise the input is
			// a head being read, which serve hands back once it passes
			// MaxHeaderBytes (net/http answers 431), or requests.
			if pc.busy && len(pc.in)+n > pc.maxInput() {
				pc.mu.Unlock()
				pc.fail("input beyond a request's limits while an answer was pending")
				pc.rstate.Store(readDead)
				return true
			}
			pc.in = append(pc.in, buf[:n]...)
			pc.mu.Unlock()
		}
		switch pc.serve(onLoop) {
		case serveEnd:
			pc.rstate.Store(readDead)
			return true
		case servePunt:
			return false
		}
		if n > 0 {
			if n == len(buf) || pc.hupped() {
				continue
			}
			err = errWouldBlock // a short read emptied the socket (see epoll.read)
		}
		if errors.Is(err, errWouldBlock) {
			if pc.rstate.CompareAndSwap(readRunning, readIdle) {
				return true
			}
			if !pc.rstate.CompareAndSwap(readAgain, readRunning) {
				return true
			}
			continue
		}
		pc.readFailed(err)
		pc.rstate.Store(readDead)
		return true
	}
}

// What serve did.
const (
	serveWait = iota // served what it could; the rest waits for input or an answer
	serveEnd         // the connection is closed or given back
	servePunt        // (onLoop) the next step needs a reader goroutine
)

// serve serves the complete requests in the input, one at a time: it
// stops at a request whose answer is pending (a GET that waits, an answer
// the socket has not taken yet), whose write reads on once it is done. On the
// epoll loop (onLoop) it stops, changing nothing, before a step that needs
// a goroutine of its own.
func (pc *pollConn) serve(onLoop bool) int {
	for {
		pc.mu.Lock()
		switch {
		case pc.closed:
			pc.mu.Unlock()
			return serveEnd
		case pc.busy && pc.post == nil:
			pc.mu.Unlock()
			return serveWait
		case pc.post != nil:
			if len(pc.in) < pc.postHead+pc.postLen {
				pc.mu.Unlock()
				return serveWait
			}
			if onLoop {
				pc.mu.Unlock()
				return servePunt // the handlers
			}
			s, body, binary := pc.post, make([]byte, pc.postLen), pc.postBin
			copy(body, pc.in[pc.postHead:])
			pc.consumeLocked(pc.postHead + pc.postLen)
			pc.post = nil
			pc.mu.Unlock()
			pc.servePost(s, body, binary)
			continue
		}
		n := headEnd(pc.in, pc.scanned)
		if n < 0 {
			switch {
			case len(pc.in) > pc.ka.MaxHeaderBytes, bareLF(pc.in, pc.scanned):
				// A bare LF: parseHead refuses the head, whose end net/http
				// may see (a blank line of a bare LF) where headEnd does not.
				pc.mu.Unlock()
				return pc.handBack(onLoop) // net/http answers 431
			case len(pc.in) > 0:
				pc.setPhaseLocked(phaseHead)
			}
			pc.scanned = len(pc.in)
			pc.mu.Unlock()
			return serveWait
		}
		if n > pc.ka.MaxHeaderBytes {
			pc.mu.Unlock()
			return pc.handBack(onLoop) // a complete head, longer than the limit: net/http answers 431
		}
		var h reqHead
		res := parseHead(pc.in, n, &h)
		pc.mu.Unlock()
		if res != headOurs {
			return pc.handBack(onLoop)
		}
		id := pc.identity(&h)
		if id == nil || !pc.take(&h, id.extra, onLoop) {
			return pc.handBack(onLoop)
		}
		pc.srv.stats.kaRequests.Add(1)
	}
}

// identity is the one of the connection's identities a request has (its
// path, Host and Origin: see KeepAlive), or nil.
func (pc *pollConn) identity(h *reqHead) *kaIdentity {
	for i := range pc.ids {
		id := &pc.ids[i]
		if string(h.path) == id.path && string(h.host) == id.host && h.hasOrigin == id.hasOrigin && string(h.origin) == id.origin {
			return id
		}
	}
	return nil
}

// maxIdentities bounds the identities a connection keeps.
const maxIdentities = 4

// addIdentity returns known with id added (in place of an equal one), the
// newest last, at most maxIdentities. known is not changed.
func addIdentity(known []kaIdentity, id kaIdentity) []kaIdentity {
	ids := make([]kaIdentity, 0, min(len(known)+1, maxIdentities))
	for _, k := range known {
		if k.path != id.path || k.host != id.host || k.hasOrigin != id.hasOrigin || k.origin != id.origin {
			ids = append(ids, k)
		}
	}
	if len(ids) == maxIdentities {
		ids = ids[1:]
	}
	return append(ids, id)
}

// take starts serving a request of the fast path, a GET or a POST of an
// open polling session that would accept it, and reports true; for any
// other it does nothing and reports false (net/http then serves it, and
// refuses what it must). The reader holds no lock.
func (pc *pollConn) take(h *reqHead, extra []byte, onLoop bool) bool {
	// The query is read in place: the strings point into the input,
	// which does not change until the reader consumes the head, below;
	// nothing keeps them.
	q := parseQuery(unsafe.String(unsafe.SliceData(h.query), len(h.query)))
	if q.transport != "polling" || q.sid == "" || q.hasJ || !validID(q.sid) || !pc.srv.allowsTransport("polling") {
		return false
	}
	s := pc.srv.lookup(q.sid)
	if s == nil || protocolOf(q.eio) != int(s.protocol) {
		return false
	}
	if h.post && (h.length > pc.srv.opts.MaxBufferSize || h.binary && s.protocol == 4) {
		return false // refused by servePost
	}
	s.mu.Lock()
	if s.state != stateOpen || s.ws != nil || s.pl == nil || s.pl.jsonp != nil {
		s.mu.Unlock()
		return false
	}
	if h.post {
		if s.pl.posting {
			s.mu.Unlock()
			return false
		}
		s.pl.posting = true
		pc.mu.Lock()
		pc.busy, pc.post, pc.postHead, pc.postLen, pc.postBin = true, s, h.n, int(h.length), h.binary
		pc.extra = extra
		pc.shutting = pc.shutting || h.close
		pc.serveWant = true
		pc.setPhaseLocked(phaseBody)
		pc.mu.Unlock()
		s.mu.Unlock()
		pc.applyServing()
		return true
	}
	if s.pl.poll != nil {
		s.mu.Unlock()
		return false // overlapping GET: refused by servePoll, which closes the session
	}
	wait := s.mustWaitLocked()
	if !wait && onLoop && h.gzip && pc.srv.opts.CompressionThreshold >= 0 && s.queued >= int64(pc.srv.opts.CompressionThreshold) {
		s.mu.Unlock()
		return false // an answer that may be compressed: not on the epoll loop
	}
	pc.mu.Lock()
	pc.consumeLocked(h.n)
	pc.busy, pc.gzip, pc.extra = true, h.gzip, extra
	pc.shutting = pc.shutting || h.close
	if wait {
		pc.wait = s
		s.pl.poll = pc
		pc.serveWant = true
		pc.setPhaseLocked(phaseWait)
		pc.mu.Unlock()
		s.mu.Unlock()
		pc.applyServing()
		return true
	}
	pc.mu.Unlock()
	msgs, last := s.takePollLocked()
	s.mu.Unlock()
	pc.answerPoll(s, msgs, last) // too soon over to count as serving a session
	return true
}

// consumeLocked drops the first n bytes of the input (a request served).
func (pc *pollConn) consumeLocked(n int) {
	rest := copy(pc.in, pc.in[n:])
	pc.in = pc.in[:rest]
	pc.scanned = 0
	if rest == 0 && cap(pc.in) > 4096 {
		pc.in = nil // what a long body grew
	}
}

// applyServing tells obs (the listener's admission count) whether the
// connection serves a session's request now: a POST, or a GET that waits;
// a GET answered at once is too soon over to count. The state is decided
// under mu (serveWant) and told after it, by one caller at a time, the
// last state last, without a lock of ours held.
func (pc *pollConn) applyServing() {
	if pc.obs == nil {
		return
	}
	for pc.applying.CompareAndSwap(false, true) {
		pc.mu.Lock()
		want, applied := pc.serveWant, pc.serveApplied
		pc.mu.Unlock()
		if want != applied {
			pc.obs.ServingSession(want)
			pc.mu.Lock()
			pc.serveApplied = want
			pc.mu.Unlock()
		}
		pc.applying.Store(false)
		pc.mu.Lock()
		again := pc.serveWant != pc.serveApplied
		pc.mu.Unlock()
		if !again {
			return
		}
	}
}

// wake is the session's: its pending GET has something to answer. It runs
// under the session's lock: the answer is left to a flush worker.
func (pc *pollConn) wake() { pc.e.flusher.submit(pc) }

// runFlush answers a woken GET, or goes on writing an answer the socket
// could not take at once.
func (pc *pollConn) runFlush() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	if pc.out != nil {
		pc.mu.Unlock()
		pc.write()
		return
	}
	s := pc.wait
	pc.mu.Unlock()
	if s == nil {
		return // the client hung up meanwhile
	}
	s.mu.Lock()
	pc.mu.Lock()
	if pc.wait != s || pc.closed {
		pc.mu.Unlock()
		s.mu.Unlock()
		return
	}
	if s.mustWaitLocked() {
		if s.pl.poll == nil {
			s.pl.poll = pc // nothing to answer after all: wait again
		}
		pc.mu.Unlock()
		s.mu.Unlock()
		return
	}
	pc.wait = nil
	if s.pl.poll == pc {
		s.pl.poll = nil
	}
	pc.mu.Unlock()
	msgs, last := s.takePollLocked()
	s.mu.Unlock()
	pc.answerPoll(s, msgs, last)
}

// answerPoll writes the answer to a GET, as servePoll does.
func (pc *pollConn) answerPoll(s *Session, msgs []Message, last bool) {
	buf := getBuffer()
	var ct []string
	buf.b, ct = s.appendPayload(buf.b, msgs)
	s.srv.stats.countOut(msgs)
	deliveredAll(msgs)
	pc.mu.Lock()
	gz := pc.gzip
	pc.mu.Unlock()
	body := buf.b
	gz = gz && s.srv.opts.CompressionThreshold >= 0 && len(body) >= s.srv.opts.CompressionThreshold
	var zbuf *buffer
	if gz {
		zbuf = getBuffer()
		zw := gzipPool.Get().(*gzip.Writer)
		w := bufferWriter{zbuf}
		zw.Reset(&w)
		_, _ = zw.Write(body)
		_ = zw.Close()
		zw.Reset(io.Discard)
		gzipPool.Put(zw)
		body = zbuf.b
	}
	pc.mu.Lock()
	closed := pc.closed
	if !closed {
		pc.setAnswerLocked(ct[0], body, gz)
		pc.outSess, pc.outLast = s, last
	}
	pc.mu.Unlock()
	putBuffer(buf)
	if zbuf != nil {
		putBuffer(zbuf)
	}
	switch {
	case !closed:
		pc.write()
	case last:
		s.finish() // shut meanwhile: as if the answer had been lost (see shut)
	default:
		s.close("transport error", errPollClosed, false, nil)
	}
}

// bufferWriter appends to a pooled buffer.
type bufferWriter struct{ b *buffer }

func (w *bufferWriter) Write(p []byte) (int, error) {
	w.b.b = append(w.b.b, p...)
	return len(p), nil
}

// appendAnswerLocked appends a 200 answer with body to b: the headers
// net/http writes for servePoll's and answerPost's answers (sorted, as it
// sorts them), the handlers' lines, and Connection: close when the
// connection closes after it.
func (pc *pollConn) appendAnswerLocked(b []byte, contentType string, body []byte, gz bool) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n"...)
	if gz {
		b = append(b, "Content-Encoding: gzip\r\n"...)
	}
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, contentType...)
	b = append(b, "\r\nDate: "...)
	b = append(b, dateHeader(time.Now())[0]...)
	b = append(b, "\r\n"...)
	if gz {
		b = append(b, "Vary: Accept-Encoding\r\n"...)
	}
	b = append(b, pc.extra...)
	if pc.shutting || pc.srv.shutting.Load() {
		pc.shutting = true
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// servePost hands a POST's packets to its session, as Session.servePost
// does, and answers "ok". It runs on the reader.
func (pc *pollConn) servePost(s *Session, body []byte, binary bool) {
	s.handlePost(body, binary, "polling", s.hs.remoteAddr())
	pc.mu.Lock()
	pc.setAnswerLocked(hdrTextHTML[0], []byte("ok"), false)
	pc.mu.Unlock()
	pc.write()
}

// setAnswerLocked makes a 200 answer with body the one to write, in a
// pooled buffer (outBuf) that write or shut gives back.
func (pc *pollConn) setAnswerLocked(contentType string, body []byte, gz bool) {
	pc.outBuf = getBuffer()
	pc.outBuf.b = pc.appendAnswerLocked(pc.outBuf.b, contentType, body, gz)
	pc.out, pc.off = pc.outBuf.b, 0
	pc.setPhaseLocked(phaseWrite)
}

// write writes the answer until it is written or the socket would block;
// EPOLLOUT then runs it again (runFlush). One runs at a time: the answer's
// writer, then the flush the engine starts.
func (pc *pollConn) write() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return // shut meanwhile, which ended the answer's session
	}
	out := pc.out[pc.off:]
	pc.mu.Unlock()
	// shut closes the socket after a write in progress (fdConn's lock),
	// and gives the buffer back only then.
	n, err := pc.fc.writev([][]byte{out})
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	pc.off += n
	if errors.Is(err, errWouldBlock) {
		pc.mu.Unlock()
		pc.e.waitOut(pc, pc.fc)
		return
	}
	if err != nil {
		pc.mu.Unlock()
		pc.shut()
		return
	}
	s, last, ob := pc.outSess, pc.outLast, pc.outBuf
	pc.out, pc.off, pc.outSess, pc.outLast, pc.outBuf = nil, 0, nil, false, nil
	pc.busy, pc.serveWant = false, false
	closing := pc.shutting
	more := len(pc.in) > 0
	if !closing {
		pc.setPhaseLocked(phaseIdle)
	}
	pc.mu.Unlock()
	putBuffer(ob)
	if last {
		s.finish()
	}
	pc.applyServing()
	switch {
	case closing:
		pc.shut()
	case more:
		pc.e.readable(pc) // requests that came meanwhile
	}
}

// readFailed ends the connection on a read error or the client's end of
// the stream. A GET that waited closes its session, as a pending poll
// whose connection closes does in servePoll (and in Node); a POST whose
// body did not all arrive too.
func (pc *pollConn) readFailed(err error) {
	pc.mu.Lock()
	wait, post := pc.wait, pc.post
	pc.wait, pc.post = nil, nil
	pc.mu.Unlock()
	if wait != nil {
		pc.abandon(wait)
	}
	if post != nil {
		post.mu.Lock()
		post.pl.posting = false
		post.mu.Unlock()
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		post.close("transport error", err, false, nil)
	}
	pc.shut()
}

// abandon ends the pending GET of s, whose connection is gone: the
// session closes ("transport error"), as with a GET net/http serves (and
// in Node); one closing already, which had woken the GET for its last
// answer, is finished, since that answer will not be written.
func (pc *pollConn) abandon(s *Session) {
	s.mu.Lock()
	if s.pl.poll == pc {
		s.pl.poll = nil
	}
	open := s.state == stateOpen
	s.mu.Unlock()
	if open {
		s.close("transport error", errPollClosed, false, nil)
	} else {
		s.finish()
	}
}

// fail ends the connection of a client that broke the rules (logged).
func (pc *pollConn) fail(reason string) {
	pc.srv.log.Warn("closed keep-alive connection", "remote", pc.nc.RemoteAddr().String(), "reason", reason)
	pc.readFailed(errors.New(reason))
}

// handBack gives the connection back to net/http with what was read of
// it and not served: a request the fast path does not take.
//
// On the epoll loop (onLoop) it does nothing and reports servePunt: giving
// the connection waits for net/http's Accept. Otherwise it reports
// serveEnd.
func (pc *pollConn) handBack(onLoop bool) int {
	if onLoop {
		return servePunt
	}
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return serveEnd
	}
	pc.closed = true
	in := pc.in
	pc.in = nil
	pc.stopTimerLocked()
	pc.mu.Unlock()
	pc.e.remove(pc, pc.fc)
	pc.srv.removePollConn(pc)
	pc.srv.stats.kaGiven.Add(1)
	live, err := fileConn(pc.fc.detach())
	if err != nil {
		pc.srv.log.Warn("closed keep-alive connection", "remote", pc.nc.RemoteAddr().String(), "reason", "cannot give it back to net/http: "+err.Error())
		_ = pc.nc.Close()
		return serveEnd
	}
	var c *returnedConn
	if rc, ok := pc.nc.(*returnedConn); ok {
		rc.mu.Lock()
		rc.Conn = live // net/http is done with it: it was hijacked
		rc.pre = append(rc.pre, in...)
		rc.ids = pc.ids
		rc.mu.Unlock()
		c = rc
	} else {
		c = &returnedConn{Conn: live, acct: pc.nc, pre: in, ids: pc.ids}
	}
	pc.srv.opts.KeepAlive.HandBack.give(c)
	return serveEnd
}

// shut closes the connection, once. The session of a pending GET is
// closed (abandon), and so is the session of an answer not all written
// (its packets are lost).
func (pc *pollConn) shut() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	pc.closed = true
	wait := pc.wait
	pc.serveWant = false
	lost, last := pc.outSess, pc.outLast
	ob := pc.outBuf
	pc.wait, pc.in, pc.out, pc.outSess, pc.outLast, pc.outBuf = nil, nil, nil, nil, false, nil
	pc.stopTimerLocked()
	pc.mu.Unlock()
	if wait != nil {
		pc.abandon(wait)
	}
	switch {
	case last:
		lost.finish()
	case lost != nil:
		// An answer the client did not take: its packets are lost, so the
		// session ends, as Node ends one whose poll's connection closes.
		lost.close("transport error", errPollClosed, false, nil)
	}
	pc.e.remove(pc, pc.fc)
	pc.fc.close()
	if ob != nil {
		putBuffer(ob) // no write reads it any more: see write
	}
	pc.srv.removePollConn(pc)
	pc.applyServing()
	_ = pc.nc.Close()
}

// setPhaseLocked sets the connection's deadline for a phase.
func (pc *pollConn) setPhaseLocked(phase int) {
	var d time.Duration
	switch phase {
	case phaseIdle:
		d = pc.ka.IdleTimeout
	case phaseHead:
		if pc.phase == phaseHead {
			return // from the head's first byte
		}
		d = pc.ka.HeaderTimeout
	case phaseBody:
		d = pc.srv.opts.PingInterval + pc.srv.opts.PingTimeout
	case phaseWait:
		pc.phase, pc.deadline = phase, 0
		return
	case phaseWrite:
		d = pc.srv.opts.PingTimeout
	}
	pc.phase, pc.deadline = phase, monoNow()+int64(d)
	// Armed for a later deadline (an idle connection's, when a head
	// starts), the timer must be moved: it would fire too late.
	if !pc.armed || pc.deadline < pc.due {
		pc.armed, pc.due = true, pc.deadline
		if pc.timer == nil {
			pc.timer = time.AfterFunc(d, pc.onTimer)
		} else {
			pc.timer.Reset(d)
		}
	}
}

func (pc *pollConn) stopTimerLocked() {
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.armed = false
}

// onTimer runs on a timer's goroutine: the deadline passed, or moved.
func (pc *pollConn) onTimer() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	if pc.deadline == 0 {
		pc.armed = false
		pc.mu.Unlock()
		return
	}
	if left := pc.deadline - monoNow(); left > 0 {
		pc.due = pc.deadline
		pc.timer.Reset(time.Duration(left))
		pc.mu.Unlock()
		return
	}
	pc.armed = false
	post, out := pc.post, pc.out != nil
	pc.mu.Unlock()
	switch {
	case post != nil:
		s := post
		s.srv.stats.refused(http.StatusBadRequest, codeBadRequest)
		s.srv.log.Log(context.Background(), slog.LevelWarn, "refused request", "sid", s.id, "transport", "polling", "remote", pc.nc.RemoteAddr().String(),
			"method", http.MethodPost, "status", http.StatusBadRequest,
			"reason", fmt.Sprintf("body not received within %v", s.srv.opts.PingInterval+s.srv.opts.PingTimeout))
		pc.readFailed(errors.New("polling body timeout"))
	case out:
		pc.fail("answer not taken within pingTimeout")
	default:
		pc.shut() // idle, or a head that did not arrive in time
	}
}

// pollConns are a server's keep-alive connections (Options.KeepAlive).
type pollConns struct {
	mu     sync.Mutex
	m      map[*pollConn]struct{}
	closed bool
}

func (srv *Server) addPollConn(pc *pollConn) bool {
	p := &srv.ka
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.m == nil {
		p.m = make(map[*pollConn]struct{})
	}
	p.m[pc] = struct{}{}
	srv.stats.kaTaken.Add(1)
	return true
}

func (srv *Server) removePollConn(pc *pollConn) {
	p := &srv.ka
	p.mu.Lock()
	delete(p.m, pc)
	p.mu.Unlock()
}

// closePollConns closes the keep-alive connections once the server is
// closed and its sessions are gone: at once, or once the answer they are
// writing is written.
func (srv *Server) closePollConns() {
	p := &srv.ka
	p.mu.Lock()
	p.closed = true
	all := slices.Collect(maps.Keys(p.m))
	p.mu.Unlock()
	for _, pc := range all {
		pc.mu.Lock()
		writing := pc.out != nil
		pc.shutting = true
		pc.mu.Unlock()
		if !writing {
			pc.shut()
		}
	}
}

// PollConns is the number of keep-alive connections the server serves
// itself (Options.KeepAlive).
func (srv *Server) PollConns() int {
	p := &srv.ka
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
