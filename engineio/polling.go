package engineio

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatio/socketio-chat/internal/httpasset"

	"github.com/chatio/socketio-chat/internal/jsontext"
)

var (
	errOverlap            = errors.New("overlap from client")
	errPostOverlap        = errors.New("data request overlap from client")
	errPollClosed         = errors.New("poll connection closed prematurely")
	errHeartbeatDirection = errors.New("invalid heartbeat direction")
)

// servePoll answers a polling GET with what is queued, waiting for
// something to be queued if nothing is. The wait has no timeout of its own:
// the heartbeat puts a PING in the queue every pingInterval.
func (s *Session) servePoll(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	switch {
	case s.state == stateClosed:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelDebug, s.id, "polling", http.StatusBadRequest, codeUnknownSID, "session closed")
		return
	case s.ws != nil || s.pl == nil:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelDebug, s.id, "polling", http.StatusBadRequest, codeBadRequest, "poll on a websocket session")
		return
	case s.pl.poll != nil:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelWarn, s.id, "polling", http.StatusBadRequest, codeBadRequest, "overlapping GET")
		s.close("transport error", errOverlap, false, nil)
		return
	}
	for s.mustWaitLocked() {
		ch := make(chanWaiter)
		s.pl.poll = ch
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-r.Context().Done():
			s.mu.Lock()
			if s.pl.poll == ch {
				s.pl.poll = nil
				s.mu.Unlock()
				s.close("transport error", errPollClosed, false, nil)
				return
			}
		}
	}
	msgs, last := s.takePollLocked()
	open := s.state == stateOpen
	s.mu.Unlock()
	s.writePayload(w, r, msgs)
	s.srv.stats.countOut(msgs)
	deliveredAll(msgs)
	if last {
		s.finish()
		return
	}
	if open {
		s.keepAlive(w, r, true)
	}
}

// mustWaitLocked reports whether a GET has nothing to answer yet. s.mu is
// held.
func (s *Session) mustWaitLocked() bool {
	return len(s.queue) == 0 && s.state == stateOpen && !s.pl.pollNoop && s.ws == nil
}

// takePollLocked takes what a GET answers, once there is something
// (mustWaitLocked is false): the queue, a CLOSE, or a NOOP. last reports
// that the answer ends the session, which the caller finishes once it is
// written. s.mu is held.
func (s *Session) takePollLocked() (msgs []Message, last bool) {
	if s.ws == nil {
		msgs = s.takeQueueLocked()
	}
	closing := s.state != stateOpen
	byClient := s.pl.byClient
	s.pl.pollNoop = false
	// A closing session's last packets go in one response and CLOSE in
	// the next, as in Node: socket.io-client handles the packets of a
	// payload a tick after the CLOSE that ends the payload, so a DISCONNECT
	// next to it would come too late to be reported ("io server
	// disconnect").
	last = closing && len(msgs) == 0
	if closing && !last {
		if s.pl.linger != nil {
			s.pl.linger.Stop()
		}
		s.pl.linger = time.AfterFunc(s.srv.opts.CloseTimeout, s.finish)
	}
	if last && !byClient {
		msgs = append(msgs, closeMessage)
	} else if len(msgs) == 0 {
		// Nothing to send, or a session the client closed: Node answers a
		// GET that was pending when the client's CLOSE came with a NOOP
		// (Polling.onClose).
		msgs = append(msgs, noopMessage)
	}
	return msgs, last
}

// writePayload encodes msgs for the session's protocol and writes them as
// the response to a GET, gzip-compressed when it is worth it.
func (s *Session) writePayload(w http.ResponseWriter, r *http.Request, msgs []Message) {
	buf := getBuffer()
	defer putBuffer(buf)
	var contentType []string
	buf.b, contentType = s.appendPayload(buf.b, msgs)
	if s.pl.jsonp != nil {
		// Node's JSONP.doWrite: the payload as a string literal, passed to
		// the client's callback; the Content-Type stays text/plain.
		js := getBuffer()
		defer putBuffer(js)
		js.b = appendJSONP(js.b, s.pl.jsonp, buf.b)
		buf, js = js, buf
	}
	h := w.Header()
	h["Content-Type"] = contentType
	h["Cache-Control"] = hdrNoStore
	now := time.Now()
	setDate(h, now)
	_ = http.NewResponseController(w).SetWriteDeadline(now.Add(s.srv.opts.PingTimeout))
	if t := s.srv.opts.CompressionThreshold; t >= 0 && len(buf.b) >= t && httpasset.AcceptsGzip(r.Header) {
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(w)
		_, _ = zw.Write(buf.b)
		_ = zw.Close()
		zw.Reset(io.Discard)
		gzipPool.Put(zw)
		return
	}
	h["Content-Length"] = []string{strconv.Itoa(len(buf.b))}
	_, _ = w.Write(buf.b)
}

// appendPayload appends msgs encoded for the session's protocol to b, and
// returns the Content-Type of the answer.
func (s *Session) appendPayload(b []byte, msgs []Message) ([]byte, []string) {
	switch {
	case s.protocol == 4:
		return appendPayloadV4(b, msgs), hdrTextPlain
	case !s.b64 && s.pl.jsonp == nil && hasBinary(msgs):
		return appendPayloadV3Binary(b, msgs), hdrOctetStream
	default:
		return appendPayloadV3Text(b, msgs), hdrTextPlain
	}
}

func hasBinary(msgs []Message) bool {
	for _, m := range msgs {
		if m.binary {
			return true
		}
	}
	return false
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return zw
}}

// servePost reads a polling POST's packets and hands them to the session.
// The body is read up to MaxBufferSize bytes, within the time the heartbeat
// gives a silent client; a body that is too big or too slow is refused and
// closes the session. A body that is not an Engine.IO payload closes the
// session ("parse error") after the packets before the bad one, and is
// answered "ok", as Node does.
func (s *Session) servePost(w http.ResponseWriter, r *http.Request) {
	const transport = "polling"
	s.mu.Lock()
	switch {
	case s.state != stateOpen:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelDebug, s.id, transport, http.StatusBadRequest, codeUnknownSID, "session closed")
		return
	case s.ws != nil || s.pl == nil:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelDebug, s.id, transport, http.StatusBadRequest, codeBadRequest, "POST on a websocket session")
		return
	case s.pl.posting:
		s.mu.Unlock()
		s.srv.refuseCode(w, r, slog.LevelWarn, s.id, transport, http.StatusBadRequest, codeBadRequest, "overlapping POST")
		s.close("transport error", errPostOverlap, false, nil)
		return
	}
	s.pl.posting = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.pl.posting = false
		s.mu.Unlock()
	}()

	o := &s.srv.opts
	binary := r.Header.Get("Content-Type") == "application/octet-stream"
	if binary && s.protocol == 4 {
		s.srv.refuseCode(w, r, slog.LevelWarn, s.id, transport, http.StatusBadRequest, codeBadRequest,
			"binary body, which Engine.IO v4 does not use")
		s.close("transport error", errors.New("invalid content"), false, nil)
		return
	}
	if r.ContentLength > o.MaxBufferSize {
		s.srv.refuse(w, r, slog.LevelWarn, s.id, transport, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large",
			fmt.Sprintf("body of %d bytes, over maxHttpBufferSize %d", r.ContentLength, o.MaxBufferSize))
		s.close("transport error", errors.New("payload too large"), false, nil)
		return
	}
	timeout := o.PingInterval + o.PingTimeout
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	body, err := readBody(w, r, o.MaxBufferSize)
	if err != nil {
		var tooBig *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooBig):
			s.srv.refuse(w, r, slog.LevelWarn, s.id, transport, http.StatusRequestEntityTooLarge, codeBadRequest, "Payload too large",
				fmt.Sprintf("body over maxHttpBufferSize %d", o.MaxBufferSize))
		case errors.As(err, &ne) && ne.Timeout():
			s.srv.refuseCode(w, r, slog.LevelWarn, s.id, transport, http.StatusBadRequest, codeBadRequest,
				fmt.Sprintf("body not received within %v", timeout))
		default:
			s.srv.refuseCode(w, r, slog.LevelDebug, s.id, transport, http.StatusBadRequest, codeBadRequest,
				"reading the body: "+err.Error())
		}
		s.close("transport error", err, false, nil)
		return
	}
	if s.pl.jsonp != nil {
		d, ok := jsonpData(body)
		if !ok {
			// Node reads nothing from such a body (qs.parse(body).d is not a
			// string) and answers "ok".
			s.srv.log.Warn("refused packet", "sid", s.id, "transport", transport, "remote", r.RemoteAddr,
				"reason", "JSONP body without one d field")
			s.answerPost(w)
			return
		}
		body, binary = d, false
	}
	open := s.handlePost(body, binary, transport, r.RemoteAddr)
	s.answerPost(w)
	if open && r.ContentLength == int64(len(body)) {
		s.keepAlive(w, r, false)
	}
}

// handlePost hands the packets of a POST's body to the session and ends
// the POST (posting); it reports whether the session is still open. A
// bad payload is logged (remote is the client's address): the packets
// before the bad one are handled, the session closes (its pending GET
// gets CLOSE, the next GET 400), and the POST still gets its "ok", as in
// Node (engine.io-parser decodes up to an error packet, on which
// Socket.onPacket closes). The packets come first, then the answer, as
// Node does (onData, then res.end("ok"), the request forgotten at once): a
// client sends its next POST as soon as it has the "ok", maybe on another
// connection, and that POST must not find this one still in progress.
func (s *Session) handlePost(body []byte, binary bool, transport, remote string) (open bool) {
	var packets []packet
	var err error
	switch {
	case binary:
		packets, err = decodePayloadV3Binary(body)
	case s.protocol == 4:
		packets, err = decodePayloadV4(validUTF8(body))
	default:
		packets, err = decodePayloadV3Text(validUTF8(body))
	}
	if err != nil {
		s.srv.log.Warn("refused packet", "sid", s.id, "transport", transport, "remote", remote,
			"reason", "invalid Engine.IO payload: "+err.Error())
	}
	for _, p := range packets {
		if p.typ == typeClose {
			s.closeByClient()
			break // what follows is dropped, as in Node
		}
		s.receive(p)
	}
	if err != nil {
		s.close("parse error", err, false, nil)
	}
	s.mu.Lock()
	s.pl.posting = false
	open = s.state == stateOpen
	s.mu.Unlock()
	return open
}

// answerPost answers a POST that was read: "ok", as Node does.
func (s *Session) answerPost(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = hdrTextHTML
	h["Content-Length"] = hdrLength2
	h["Cache-Control"] = hdrNoStore
	setDate(h, time.Now())
	_, _ = io.WriteString(w, "ok")
}

// dateValue is the Date header of one second.
type dateValue struct {
	sec int64
	v   []string
}

var lastDate atomic.Pointer[dateValue]

// dateHeader is the Date header value for a response written at now, the
// same slice for every response of the same second (read only, as the
// values below). net/http writes the same value when a response has no
// Date, formatting it for each response (2 000 instructions, 2.5 % of the
// server's under callgrind in the polling load).
func dateHeader(now time.Time) []string {
	sec := now.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.v
	}
	d := &dateValue{sec: sec, v: []string{now.UTC().Format(http.TimeFormat)}}
	lastDate.Store(d)
	return d.v
}

// setDate gives a response the Date of now unless a Headers hook gave it
// one (net/http keeps a handler's Date).
func setDate(h http.Header, now time.Time) {
	if _, ok := h["Date"]; !ok {
		h["Date"] = dateHeader(now)
	}
}

// The values of the headers of polling responses, shared by every response
// rather than allocated for each (http.Header.Set allocates the slice): set
// after the Headers hooks ran, and only read afterwards (net/http copies
// them when it writes the header), so nothing modifies them.
var (
	hdrTextPlain   = []string{"text/plain; charset=UTF-8"}
	hdrOctetStream = []string{"application/octet-stream"}
	hdrTextHTML    = []string{"text/html"}
	hdrNoStore     = []string{"no-store"}
	hdrLength2     = []string{"2"}
)

// closeByClient ends the session on the client's CLOSE packet, sent in a
// POST. As in Node (Polling.onClose), a GET pending then is answered with a
// NOOP rather than CLOSE, since the client asked; the next GET gets 400.
func (s *Session) closeByClient() {
	s.mu.Lock()
	if s.state == stateOpen {
		s.pl.byClient = true
	}
	s.mu.Unlock()
	s.close("transport close", nil, false, nil)
}

// bodyChunk is the most a body's buffer has beyond what has arrived.
const bodyChunk = 4096

// readBody reads a request body of at most limit bytes. Its buffer grows
// with what arrives (doubling), never by the Content-Length the client
// announces, which costs it nothing to send: a short body gets one buffer
// of its length, a long one a few copies.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	want := r.ContentLength // -1: unknown (chunked)
	if want < 0 || want > limit {
		want = limit + 1 // MaxBytesReader fails past limit
	}
	buf := make([]byte, 0, min(want, bodyChunk))
	for {
		if int64(len(buf)) == r.ContentLength {
			return buf, nil // the body's end (net/http reads no further)
		}
		if len(buf) == cap(buf) {
			// Not at want: MaxBytesReader fails before a body reaches limit+1.
			grown := make([]byte, len(buf), min(want, int64(2*len(buf)+bodyChunk)))
			copy(grown, buf)
			buf = grown
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case err == io.EOF && r.ContentLength > int64(len(buf)):
			return nil, io.ErrUnexpectedEOF
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// validUTF8 returns b, or, if it is not valid UTF-8, a copy with each
// maximal ill-formed subpart replaced by U+FFFD, as Node reads a polling
// body (Buffer.toString("utf8")).
func validUTF8(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return jsontext.AppendUTF8(make([]byte, 0, len(b)+16), b)
}

// buffer is a pooled scratch buffer.
type buffer struct{ b []byte }

var bufferPool = sync.Pool{New: func() any { return &buffer{b: make([]byte, 0, 4096)} }}

func getBuffer() *buffer { return bufferPool.Get().(*buffer) }

func putBuffer(b *buffer) {
	if cap(b.b) > 1<<20 {
		return // do not keep what a burst grew
	}
	b.b = b.b[:0]
	bufferPool.Put(b)
}
