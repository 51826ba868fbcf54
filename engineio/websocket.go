package engineio

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// WebSocket close codes.
const (
	closeNormal          = 1000
	closeProtocolError   = 1002
	closeNoStatus        = 1005
	closeInvalidPayload  = 1007
	closeMessageTooBig   = 1009
	closeInternalFailure = 1011
)

// wsConn is one WebSocket connection: the transport of a session opened
// over WebSocket, or a polling session's upgrade (a probe until the
// client's UPGRADE packet).
//
// Reading: one reader at a time (the I/O engine guarantees it) parses
// frames and hands packets to the session; the read-side fields belong to
// it. Writing: one flush at a time (the flushing flag, under the session's
// lock) writes the session's queue and the connection's own control frames;
// the flush-side fields belong to it. An idle connection holds no buffer
// and, with the epoll engine, no goroutine.
type wsConn struct {
	sess *Session
	io   ioEngine
	raw  rawConn

	// read side, owned by the reader
	partial    []byte // an incomplete frame, or nil; grows as it arrives (see keepPartial)
	want       int    // the bytes the incomplete frame takes, as far as its header tells
	frag       []byte // the fragments of a message being assembled
	fragOp     byte
	fragging   bool
	fragZ      bool // the message being assembled is compressed
	deflate    bool // permessage-deflate was negotiated (set before the reader starts, then read-only)
	peerClosed bool // a close frame was received
	discard    bool // the connection is shutting down: input is dropped
	probing    bool // an upgrade probe: only PING "probe" and UPGRADE are expected
	evState         // the epoll engine's

	// guarded by sess.mu
	ctrl        []ctrlFrame // frames of the engine's own: pongs, "3probe"; bounded with the session's queue
	ctrlBytes   int64       // what ctrl costs (in the session's ctrlQueued)
	flushing    bool        // a flush is scheduled or running
	closing     bool        // send the close frame after what is queued, then shut down
	dropData    bool        // send no more data, only control frames
	closeCode   uint16
	closeQueued bool

	released atomic.Bool // in the word the flags above leave free

	// flush side, owned by the running flush
	fb    *flushBuf   // nil between flushes; with the trackers and budget charge of what it holds
	timer *time.Timer // bounds the close handshake
}

type ctrlFrame struct {
	op      byte
	payload []byte
}

var errBadHandshake = errors.New("bad websocket handshake")

// acceptWebSocket answers the WebSocket handshake of r and takes over the
// connection. On failure it has answered the request.
//
// The 101 answer is written here, on its own, before the session's first
// flush writes the OPEN packet. Writing both in one writev (and the first
// flush on the handshake's goroutine) saved a system call and a wake-up per
// connect, but the OPEN then reached clients a little sooner, and
// zishang520's Go client, which subscribes to its Engine.IO socket's
// "open" only after it has started the handshake, missed it 3 times in 12
// (test/goclient; none in 12 before): it then waits its connect timeout.
func (s *Server) acceptWebSocket(w http.ResponseWriter, r *http.Request, sess *Session) (*wsConn, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet {
		s.refuseCode(w, r, slog.LevelWarn, sess.id, "websocket", http.StatusBadRequest, codeBadRequest, "websocket handshake with method "+r.Method)
		return nil, errBadHandshake
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		w.Header().Set("Sec-WebSocket-Version", "13")
		s.refuseCode(w, r, slog.LevelWarn, sess.id, "websocket", http.StatusBadRequest, codeBadRequest, fmt.Sprintf("websocket version %q", v))
		return nil, errBadHandshake
	}
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		s.refuseCode(w, r, slog.LevelWarn, sess.id, "websocket", http.StatusBadRequest, codeBadRequest, "bad Sec-WebSocket-Key")
		return nil, errBadHandshake
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.log.Error("websocket: cannot take over the connection", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "websocket not supported here", http.StatusInternalServerError)
		return nil, err
	}
	if o, ok := nc.(ConnObserver); ok {
		o.Upgraded()
	}
	resp := make([]byte, 0, 160)
	resp = append(resp, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	resp = append(resp, acceptKey(key)...)
	deflate := s.opts.PerMessageDeflate && negotiateDeflate(r.Header)
	if deflate {
		resp = append(resp, "\r\nSec-WebSocket-Extensions: "+deflateResponse...)
	}
	resp = append(resp, "\r\n"...)
	resp = appendHeaders(resp, w.Header())
	resp = append(resp, "\r\n"...)
	c := &wsConn{sess: sess, deflate: deflate}
	_ = nc.SetWriteDeadline(time.Now().Add(s.opts.PingTimeout))
	if _, err := nc.Write(resp); err != nil {
		_ = nc.Close()
		return nil, err
	}
	if deflate {
		s.stats.deflateNegotiated.Add(1)
		s.log.Debug("websocket compression negotiated", "sid", sess.id, "transport", "websocket", "remote", r.RemoteAddr,
			"extensions", deflateResponse)
	}
	c.partial = unread(nc, brw.Reader)
	c.io, c.raw, err = s.io.wrap(nc, s.opts.PingTimeout)
	if err != nil {
		_ = nc.Close()
		s.log.Error("websocket: cannot take over the connection", "remote", r.RemoteAddr, "err", err)
		return nil, err
	}
	return c, nil
}

var wsGUID = []byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11")

func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write(wsGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// serveUpgrade opens a WebSocket for a polling session and probes it. A
// WebSocket for a session that has one already (upgraded, opened over
// WebSocket, or probing one) is accepted and closed at once, as Node does.
func (s *Session) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	bad, busy := "", ""
	switch {
	case s.state != stateOpen:
		bad = "upgrade of a closed session"
	case s.ws != nil || s.upgraded:
		busy = "session already upgraded"
	case s.probeLocked() != nil:
		busy = "upgrade already under way"
	case s.srv.opts.DisableUpgrades:
		bad = "upgrades are disabled"
	}
	s.mu.Unlock()
	if bad != "" {
		s.srv.refuseCode(w, r, slog.LevelWarn, s.id, "websocket", http.StatusBadRequest, codeBadRequest, bad)
		return
	}
	c, err := s.srv.acceptWebSocket(w, r, s)
	if err != nil {
		return
	}
	if busy != "" {
		s.refuseWebSocket(c, r, busy)
		return
	}
	c.probing = true
	s.mu.Lock()
	switch {
	case s.state != stateOpen:
		s.mu.Unlock()
		c.abort()
		return
	case s.ws != nil || s.pl == nil || s.pl.probe != nil:
		s.mu.Unlock()
		s.refuseWebSocket(c, r, "upgrade already under way")
		return
	}
	s.pl.probe = c
	s.pl.upgradeTimer = time.AfterFunc(s.srv.opts.UpgradeTimeout, func() { s.abortProbe(c) })
	s.mu.Unlock()
	c.start()
}

// refuseWebSocket closes c, a WebSocket opened for a session that has one
// already, as Node does (onWebSocket: ws's close() without a code): the
// handshake is complete, a close frame with no status code follows, and
// the connection's input is dropped until the client closes (within
// CloseTimeout). The session's own transport goes on; nothing of c reaches
// the session.
func (s *Session) refuseWebSocket(c *wsConn, r *http.Request, reason string) {
	s.srv.log.Warn("refused websocket", "sid", s.id, "transport", "websocket", "remote", r.RemoteAddr, "reason", reason)
	c.discard = true // before the reader starts: it owns the field afterwards
	c.start()
	c.beginClose(closeNoStatus, true)
}

// abortProbe gives up an upgrade; the session goes on polling.
func (s *Session) abortProbe(c *wsConn) {
	s.mu.Lock()
	if s.probeLocked() != c {
		s.mu.Unlock()
		return
	}
	s.pl.probe = nil
	if s.pl.upgradeTimer != nil {
		s.pl.upgradeTimer.Stop()
	}
	s.mu.Unlock()
	c.abort()
}

// onProbe handles a packet on a WebSocket that is being probed.
func (s *Session) onProbe(c *wsConn, p packet) {
	switch {
	case p.typ == typePing && string(p.data) == "probe":
		s.mu.Lock()
		if s.probeLocked() == c {
			c.queueCtrlLocked(opText, probeMessage.b)
			// The pending GET is released 100ms from now, and every 100ms,
			// as Node does: the client pauses polling when it has seen the
			// probe's answer, and some clients (the Go one) miss a poll
			// that completes right at that moment.
			s.upgradeTick(c)
		}
		s.mu.Unlock()
	case p.typ == typeUpgrade:
		s.mu.Lock()
		if s.probeLocked() != c || s.state != stateOpen {
			s.mu.Unlock()
			c.abort()
			return
		}
		s.pl.probe = nil
		s.pl.upgradeTimer.Stop()
		s.ws = c
		s.upgraded = true
		c.probing = false
		if s.pl.poll != nil {
			s.pl.pollNoop = true
			s.wakePollLocked()
		}
		c.scheduleFlushLocked() // what polling left in the queue
		s.mu.Unlock()
		s.srv.stats.upgraded()
		s.post(event{kind: evUpgrade})
	default:
		s.abortProbe(c)
	}
}

// upgradeTick releases the pending GET of a session being upgraded, every
// 100ms, so that the client can pause polling and send UPGRADE (Node's
// "fast upgrade" NOOP). s.mu is held.
func (s *Session) upgradeTick(c *wsConn) {
	var tick func()
	tick = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.probeLocked() != c || s.state != stateOpen {
			return
		}
		if s.pl.poll != nil {
			s.pl.pollNoop = true
			s.wakePollLocked()
		}
		time.AfterFunc(100*time.Millisecond, tick)
	}
	time.AfterFunc(100*time.Millisecond, tick)
}

// start processes what arrived with the handshake and hands the
// connection to its I/O engine.
func (c *wsConn) start() {
	if b := c.partial; len(b) > 0 {
		c.partial = nil
		if !c.handleRead(b) {
			return
		}
	}
	if err := c.io.register(c); err != nil {
		c.sess.srv.log.Error("websocket: cannot watch the connection", "sid", c.sess.id, "err", err)
		c.onReadError(err)
	}
}

// handleRead parses the frames in data (a read from the connection) and
// hands their packets on. It reports false once the connection is done
// with input.
func (c *wsConn) handleRead(data []byte) bool {
	if c.discard {
		return true
	}
	fromPartial := len(c.partial) > 0
	if fromPartial {
		c.partial = growPartial(c.partial, len(data), c.want)
		c.partial = append(c.partial, data...)
		data = c.partial
	}
	for len(data) > 0 && !c.discard {
		n, need, ok := c.parseFrame(data)
		if !ok {
			// The connection failed and sent its close frame: input is
			// drained (c.discard) until the client closes, unless it is
			// gone already.
			c.partial = nil
			return !c.released.Load()
		}
		if n == 0 {
			c.keepPartial(data, fromPartial, need)
			return true
		}
		data = data[n:]
	}
	c.partial = nil
	return true
}

// partialChunk is the room an incomplete frame's buffer has beyond what
// has arrived: the rest of a frame is read into a buffer that grows with
// what arrives (at most doubling), never by the length the frame's header
// announces, which costs the client nothing to send.
const partialChunk = 4096

// keepPartial keeps the incomplete frame at the start of rest (need bytes
// once whole, as far as its header tells) until more input arrives. rest
// is the read buffer's (copied) or, when fromPartial, the end of
// c.partial (moved to its front, or into a smaller buffer when c.partial
// is much bigger than what is left).
func (c *wsConn) keepPartial(rest []byte, fromPartial bool, need int) {
	c.want = need
	room := min(need, len(rest)+partialChunk)
	switch {
	case fromPartial && &rest[0] == &c.partial[0]:
		c.partial = rest // nothing used: all of it waits for more
	case fromPartial && cap(c.partial) <= 2*len(rest)+partialChunk:
		c.partial = c.partial[:copy(c.partial, rest)]
	default:
		p := make([]byte, len(rest), max(room, len(rest)))
		copy(p, rest)
		c.partial = p
	}
}

// growPartial makes room in p for n more bytes: twice what p holds (plus
// partialChunk) when it must grow, so that a big frame costs a few copies,
// but no more than the frame takes (want) unless more has arrived.
func growPartial(p []byte, n, want int) []byte {
	if cap(p)-len(p) >= n {
		return p
	}
	q := make([]byte, len(p), max(len(p)+n, min(want, 2*len(p)+partialChunk)))
	copy(q, p)
	return q
}

// parseFrame parses the frame at the start of b. It returns the bytes it
// used (0 when the frame is incomplete, with need the bytes the whole frame
// takes), and ok false when the connection failed.
func (c *wsConn) parseFrame(b []byte) (n, need int, ok bool) {
	if len(b) < 2 {
		return 0, 14, true
	}
	fin := b[0]&0x80 != 0
	rsv := b[0] & 0x70
	op := b[0] & 0x0f
	masked := b[1]&0x80 != 0
	length := uint64(b[1] & 0x7f)
	hdr := 2
	switch length {
	case 126:
		if len(b) < 4 {
			return 0, 8, true
		}
		length = uint64(binary.BigEndian.Uint16(b[2:]))
		hdr = 4
	case 127:
		if len(b) < 10 {
			return 0, 14, true
		}
		length = binary.BigEndian.Uint64(b[2:])
		hdr = 10
	}
	if masked {
		hdr += 4
	}
	compressed := rsv == 0x40
	switch {
	case rsv != 0 && (!compressed || !c.deflate):
		return 0, 0, c.protocolError(closeProtocolError, "websocket: reserved bits set")
	case compressed && op != opText && op != opBinary:
		// RSV1 marks the first frame of a compressed message only: never a
		// continuation, never a control frame.
		return 0, 0, c.protocolError(closeProtocolError, "websocket: RSV1 set on a frame that is not a message's first")
	case !masked:
		return 0, 0, c.protocolError(closeProtocolError, "websocket: unmasked client frame")
	case op >= opClose && (!fin || length > 125):
		return 0, 0, c.protocolError(closeProtocolError, "websocket: bad control frame")
	case op > opBinary && op < opClose || op > opPong:
		return 0, 0, c.protocolError(closeProtocolError, fmt.Sprintf("websocket: unknown opcode %d", op))
	case op < opClose && (length > uint64(c.sess.srv.opts.MaxBufferSize) ||
		length+uint64(len(c.frag)) > uint64(c.sess.srv.opts.MaxBufferSize)):
		// (Both tests: a 64-bit length can wrap around in the sum.)
		return 0, 0, c.protocolError(closeMessageTooBig, "websocket message over maxHttpBufferSize: read limit exceeded")
	}
	total := hdr + int(length)
	if len(b) < total {
		return 0, total, true
	}
	payload := b[hdr:total]
	maskBytes(b[hdr-4:hdr], payload)
	return total, 0, c.onFrame(fin, op, compressed, payload)
}

// maskBytes applies the client's masking key to p, in place.
func maskBytes(key []byte, p []byte) {
	k32 := binary.LittleEndian.Uint32(key)
	k64 := uint64(k32) | uint64(k32)<<32
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], binary.LittleEndian.Uint64(p[i:])^k64)
	}
	for ; i < len(p); i++ {
		p[i] ^= key[i&3]
	}
}

// onFrame handles one complete frame; payload is unmasked and only valid
// during the call. compressed is the first frame's RSV1: the message is
// compressed, and inflated once whole.
func (c *wsConn) onFrame(fin bool, op byte, compressed bool, payload []byte) bool {
	switch op {
	case opContinuation:
		if !c.fragging {
			return c.protocolError(closeProtocolError, "websocket: continuation without a message")
		}
		c.frag = append(c.frag, payload...)
		if fin {
			msg, msgOp, z := c.frag, c.fragOp, c.fragZ
			c.frag, c.fragging, c.fragZ = nil, false, false
			if z {
				return c.onCompressed(msgOp, msg)
			}
			return c.onMessage(msgOp, msg)
		}
		return true
	case opText, opBinary:
		if c.fragging {
			return c.protocolError(closeProtocolError, "websocket: new message inside a fragmented one")
		}
		if !fin {
			c.fragging, c.fragOp, c.fragZ = true, op, compressed
			c.frag = append([]byte(nil), payload...)
			return true
		}
		if compressed {
			return c.onCompressed(op, payload)
		}
		return c.onMessage(op, bytes.Clone(payload))
	case opPing:
		s := c.sess
		s.mu.Lock()
		c.queueCtrlLocked(opPong, payload)
		s.mu.Unlock()
		return true
	case opPong:
		return true
	case opClose:
		code := uint16(closeNoStatus)
		switch {
		case len(payload) == 1:
			return c.protocolError(closeProtocolError, "websocket: close frame of one byte")
		case len(payload) >= 2:
			code = binary.BigEndian.Uint16(payload)
			if !validCloseCode(code) {
				return c.protocolError(closeProtocolError, fmt.Sprintf("websocket: invalid close code %d", code))
			}
			if !utf8.Valid(payload[2:]) {
				return c.protocolError(closeProtocolError, "websocket: close reason not UTF-8")
			}
		}
		c.peerClosed = true
		c.discard = true
		s := c.sess
		s.mu.Lock()
		weClosed := c.closing
		s.mu.Unlock()
		if weClosed {
			// The client answered our close frame: the handshake is over.
			c.release()
			return false
		}
		if code == closeNoStatus {
			code = closeNormal
		}
		c.closeWith(code, "transport close", nil)
		return true
	}
	return true
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455 §7.4), as ws's isValidStatusCode has it: the defined codes but
// 1004 (reserved), 1005 and 1006 (never sent), and 3000–4999 (registered and
// private ones).
func validCloseCode(code uint16) bool {
	return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006 ||
		code >= 3000 && code <= 4999
}

// onCompressed inflates a compressed message (z is only valid during the
// call) and hands it on. Its decompressed size is bounded by
// MaxBufferSize, as an uncompressed message's: beyond, the connection is
// failed with 1009, as ws does.
func (c *wsConn) onCompressed(op byte, z []byte) bool {
	msg, err := inflate(z, c.sess.srv.opts.MaxBufferSize)
	switch {
	case errors.Is(err, errInflateTooBig):
		return c.protocolError(closeMessageTooBig, "websocket message over maxHttpBufferSize once decompressed: read limit exceeded")
	case err != nil:
		return c.protocolError(closeInvalidPayload, "websocket: "+err.Error())
	}
	return c.onMessage(op, msg)
}

// onMessage decodes a whole message, which it owns, into an Engine.IO
// packet for the session.
func (c *wsConn) onMessage(op byte, msg []byte) bool {
	s := c.sess
	var (
		p   packet
		err error
	)
	if op == opText {
		if !utf8.Valid(msg) {
			return c.protocolError(closeInvalidPayload, "websocket: text message not UTF-8")
		}
		p, err = decodeText(msg, int(s.protocol))
	} else {
		p, err = decodeBinaryFrame(msg, int(s.protocol))
	}
	if err != nil {
		s.srv.log.Warn("refused packet", "sid", s.id, "transport", "websocket", "remote", s.hs.remoteAddr(),
			"reason", "invalid Engine.IO packet")
		if c.probing {
			s.abortProbe(c)
			return false
		}
		c.discard = true
		s.close("parse error", err, false, nil)
		return false
	}
	if c.probing {
		s.onProbe(c, p)
		return true
	}
	s.receive(p)
	return true
}

// protocolError fails the connection with a close frame of code.
func (c *wsConn) protocolError(code uint16, reason string) bool {
	s := c.sess
	s.srv.log.Warn("refused packet", "sid", s.id, "transport", "websocket", "remote", s.hs.remoteAddr(), "reason", reason)
	c.discard = true
	c.closeWith(code, "transport error", errors.New(reason))
	return false
}

// closeWith ends the connection with a close frame of code (nothing queued
// is sent), and its session (or its probe) with reason.
func (c *wsConn) closeWith(code uint16, reason string, err error) {
	s := c.sess
	s.mu.Lock()
	isProbe := s.probeLocked() == c
	if isProbe {
		s.pl.probe = nil
		s.pl.upgradeTimer.Stop()
	}
	s.mu.Unlock()
	c.beginClose(code, true)
	if !isProbe {
		s.close(reason, err, false, nil)
	}
}

// onReadError handles the end of input: EOF or a read error.
func (c *wsConn) onReadError(err error) {
	c.rstate.Store(readDead)
	s := c.sess
	s.mu.Lock()
	isProbe, isTransport := s.probeLocked() == c, s.ws == c
	s.mu.Unlock()
	switch {
	case isProbe:
		s.abortProbe(c)
	case isTransport:
		// A client that goes away; or the end of a close handshake, when
		// the session is closing already.
		s.close("transport close", nil, false, nil)
		c.release()
	default:
		c.release()
	}
}

// closeLocked is the session's close of its transport: a graceful close
// sends what is queued first. Either way a close frame follows, and the
// connection is shut down. s.mu is held.
func (c *wsConn) closeLocked(graceful bool) { c.closeFrameLocked(closeNormal, !graceful) }

// beginClose sends a close frame of code after (unless dropData) what is
// queued, then shuts the connection down.
func (c *wsConn) beginClose(code uint16, dropData bool) {
	s := c.sess
	s.mu.Lock()
	c.closeFrameLocked(code, dropData)
	s.mu.Unlock()
}

func (c *wsConn) closeFrameLocked(code uint16, dropData bool) {
	if c.closing {
		return
	}
	c.closing, c.dropData, c.closeCode = true, dropData, code
	c.scheduleFlushLocked()
	// The close handshake is bounded: a client that reads nothing, or
	// never closes its side, is cut off.
	c.timer = time.AfterFunc(c.sess.srv.opts.CloseTimeout, c.abort)
}

// abort closes the connection at once.
func (c *wsConn) abort() { c.release() }

// release closes the connection and, if it was its session's transport,
// forgets the session. It runs once.
func (c *wsConn) release() {
	if !c.released.CompareAndSwap(false, true) {
		return
	}
	c.io.unregister(c)
	c.raw.close()
	if c.takeWaitOut() {
		// A flush waited for the socket to be writable: it will not run
		// again, and what it was writing is dropped.
		c.delivered()
	}
	s := c.sess
	s.mu.Lock()
	isTransport := s.ws == c
	if c.timer != nil {
		c.timer.Stop()
	}
	c.takeCtrlLocked() // no flush will send them
	s.mu.Unlock()
	if isTransport {
		s.close("transport close", nil, false, nil) // if it was still open
		s.finish()
	}
}

// queueCtrlLocked queues a control frame of the engine's own, a copy of
// payload, within the session's bounds: a client that sends pings and does
// not read the pongs is a slow consumer, cut off when the pongs and the
// queue together pass Options.MaxQueuedPackets or MaxQueuedBytes. Nothing
// is queued once the connection is closing or the session overflowed.
// s.mu is held.
func (c *wsConn) queueCtrlLocked(op byte, payload []byte) {
	s := c.sess
	if c.closing || s.overflow || c.released.Load() {
		return
	}
	n := ctrlCost(payload)
	if !s.fitsLocked(1, n) {
		// Under s.mu: the trackers only record (see NewDelivery).
		deliveredAll(s.overflowLocked())
		go s.post(event{kind: evOverflow})
		return
	}
	if op == opPong {
		payload = bytes.Clone(payload) // the read buffer's, only valid during the call
	}
	c.ctrl = append(c.ctrl, ctrlFrame{op: op, payload: payload})
	c.ctrlBytes += n
	s.nctrl++
	s.ctrlQueued += n
	s.srv.charge(n)
	c.scheduleFlushLocked()
}

// takeCtrlLocked takes the control frames waiting, which are no longer
// accounted in the session's bounds. s.mu is held.
func (c *wsConn) takeCtrlLocked() []ctrlFrame {
	ctrl, n := c.ctrl, c.ctrlBytes
	if n != 0 {
		s := c.sess
		s.nctrl -= int32(len(ctrl))
		s.ctrlQueued -= n
		s.srv.charge(-n)
	}
	c.ctrl, c.ctrlBytes = nil, 0
	return ctrl
}

// scheduleFlushLocked makes sure a flush will run. s.mu is held.
func (c *wsConn) scheduleFlushLocked() {
	if c.flushing || c.released.Load() {
		return
	}
	c.flushing = true
	c.io.scheduleFlush(c)
}

// flushBuf is what a flush needs while data moves: frame headers and the
// iovecs not yet written, and what is told once they are (a connection
// holds one only while it has something to write: an idle one holds none).
type flushBuf struct {
	hdrs     []byte // frame headers, and small frames whole (see frameFirst)
	out      [][]byte
	tracked  []*Delivery // of the messages in out, told once they are written
	inflight int64       // what the packets in out cost, charged to the server's budget until written

	// queue is an empty array for the session's send queue: the one the
	// last fill emptied, kept so that a send does not allocate one per
	// delivery. It goes to the session when a send finds the connection
	// idle (spareQueueLocked) or when fill takes the queue, and comes back
	// with the next fill (keepQueue), so that it rides with the buffer in
	// its pool while the connection is idle.
	queue []Message
}

var flushBufPool = sync.Pool{New: func() any { return &flushBuf{} }}

// maxSpareQueue is the largest queue array (in packets) a flush buffer
// keeps: 2.5 KiB, the slack a session's queue may hold beyond what it
// accounts (see budget.go) while its connection is flushing.
const maxSpareQueue = 64

// spareQueueLocked is the array for the session's queue when a send finds
// it nil: a send to an idle connection takes a flush buffer from the pool
// for the flush it is about to start, and the queue array the buffer
// carries. It returns nil when a flush is scheduled or running (which owns
// c.fb) or the connection is gone. s.mu is held.
func (c *wsConn) spareQueueLocked() []Message {
	if c.flushing || c.released.Load() {
		return nil
	}
	// Not flushing: no flush holds a buffer (fill drops it before it
	// clears c.flushing, under s.mu), and the one attached here goes to
	// the flush that scheduleFlushLocked starts.
	fb := flushBufPool.Get().(*flushBuf)
	c.fb = fb
	q := fb.queue
	fb.queue = nil
	return q
}

// keepQueue keeps q, a queue array fill has taken and framed, for a later
// send: its packets are cleared (the frames and trackers are in fb). A
// large one is left to the garbage collector.
func (fb *flushBuf) keepQueue(q []Message) {
	clear(q)
	if fb != nil && cap(q) > cap(fb.queue) && cap(q) <= maxSpareQueue {
		fb.queue = q[:0]
	}
}

// flush writes the queue until it is empty or the socket would block (the
// engine then calls flush again once the socket is writable). Only one
// flush runs at a time per connection.
func (c *wsConn) flush() {
	for {
		if c.fb == nil || len(c.fb.out) == 0 {
			c.delivered()
			if !c.fill() {
				return
			}
		}
		n, err := c.raw.writev(c.fb.out)
		c.consume(n)
		if err == nil {
			continue
		}
		if errors.Is(err, errWouldBlock) {
			c.io.waitWritable(c)
			return
		}
		c.sess.srv.log.Debug("websocket write failed", "sid", c.sess.id, "err", err)
		c.delivered()
		c.dropFlushBuf()
		s := c.sess
		s.mu.Lock()
		c.flushing = false
		isTransport := s.ws == c
		s.mu.Unlock()
		if isTransport {
			s.close("transport error", err, false, nil)
		}
		c.abort()
		return
	}
}

// fill takes what is queued for this connection into the flush buffer. It
// reports false, and ends the flush, when there is nothing to write.
func (c *wsConn) fill() bool {
	s := c.sess
	s.mu.Lock()
	var msgs []Message
	var inflight int64 // for fb.inflight
	if s.ws == c && !c.dropData {
		// Still charged to the server's budget until written (delivered).
		msgs = s.queue
		inflight += s.charged
		s.queue, s.queued, s.charged = nil, 0, 0
		if fb := c.fb; fb != nil && len(msgs) > 0 {
			// What is sent while these are written goes into the array
			// the last fill emptied.
			s.queue, fb.queue = fb.queue, nil
		}
	}
	ctrl := c.ctrl
	if c.ctrlBytes != 0 {
		inflight += c.ctrlBytes
		s.nctrl -= int32(len(ctrl))
		s.ctrlQueued -= c.ctrlBytes
	}
	c.ctrl, c.ctrlBytes = nil, 0
	if len(msgs) == 0 && len(ctrl) == 0 {
		if !c.closing || c.closeQueued {
			shutdown := c.closeQueued
			c.fb.keepQueue(msgs) // the session's empty array, if any: an idle connection holds none
			c.dropFlushBuf()     // before another flush may start
			c.flushing = false
			s.mu.Unlock()
			if inflight != 0 { // a charge with nothing queued: nothing to wait for
				s.srv.charge(-inflight)
			}
			if shutdown {
				c.shutdown()
			}
			return false
		}
		c.closeQueued = true
		ctrl = append(ctrl, ctrlFrame{op: opClose, payload: closePayload(c.closeCode)})
	}
	protocol, b64 := s.protocol, s.b64
	s.mu.Unlock()
	s.srv.stats.countOut(msgs)
	if c.fb == nil {
		c.fb = flushBufPool.Get().(*flushBuf)
	}
	fb := c.fb
	fb.inflight += inflight
	for i := range msgs {
		if d := msgs[i].track; d != nil {
			fb.tracked = append(fb.tracked, d)
		}
	}
	frames := len(ctrl) + len(msgs)
	if need := frames * 10; cap(fb.hdrs) < need {
		fb.hdrs = make([]byte, 0, need)
	}
	fb.hdrs = fb.hdrs[:0]
	fb.out = fb.out[:0]
	for _, f := range ctrl {
		fb.frame(f.op, f.payload, nil)
	}
	if c.deflate {
		c.fillDeflate(msgs, int(protocol), b64)
		fb.keepQueue(msgs)
		return true
	}
	for _, m := range msgs {
		switch {
		case !m.binary:
			fb.frame(opText, m.b, nil)
		case protocol == 4:
			fb.frame(opBinary, m.b, nil)
		case b64:
			fb.frame(opText, append([]byte("b4"), base64.StdEncoding.EncodeToString(m.b)...), nil)
		default:
			fb.frame(opBinary, m.b, v3BinaryPrefix)
		}
	}
	fb.keepQueue(msgs)
	return true
}

// closePayload is the payload of a close frame of code: none for
// closeNoStatus (ws's close() without a code).
func closePayload(code uint16) []byte {
	if code == closeNoStatus {
		return nil
	}
	return binary.BigEndian.AppendUint16(nil, code)
}

// v3BinaryPrefix is the packet type a v3 binary frame starts with.
var v3BinaryPrefix = []byte{4}

// frame appends a server frame (unmasked): its header, then prefix and
// payload, as iovecs.
func (fb *flushBuf) frame(op byte, payload, prefix []byte) {
	fb.frameFirst(0x80|op, payload, prefix)
}

// Small frames are copied whole into fb.hdrs, after their header, so that
// a run of them is one iovec: the usual flush, one chat message, is then
// one buffer, which writev makes a write(2). A payload of more than
// copyPayload bytes is written from where it is (a broadcast's is shared
// by every recipient), and so is any once a fill has copied copyLimit
// bytes, which bounds what a burst adds to the pooled buffer.
const (
	copyPayload = 512
	copyLimit   = 16 << 10
)

// frameFirst is frame with the header's first byte (FIN, RSV1, opcode).
func (fb *flushBuf) frameFirst(first byte, payload, prefix []byte) {
	n := len(payload) + len(prefix)
	start := len(fb.hdrs)
	fb.hdrs = append(fb.hdrs, first)
	switch {
	case n < 126:
		fb.hdrs = append(fb.hdrs, byte(n))
	case n <= 0xFFFF:
		fb.hdrs = append(fb.hdrs, 126, byte(n>>8), byte(n))
	default:
		fb.hdrs = append(fb.hdrs, 127)
		fb.hdrs = binary.BigEndian.AppendUint64(fb.hdrs, uint64(n))
	}
	if n <= copyPayload && start+n <= copyLimit {
		fb.hdrs = append(fb.hdrs, prefix...)
		fb.hdrs = append(fb.hdrs, payload...)
		fb.appendHdrs(start)
		return
	}
	fb.appendHdrs(start)
	if len(prefix) > 0 {
		fb.out = append(fb.out, prefix)
	}
	if len(payload) > 0 {
		fb.out = append(fb.out, payload)
	}
}

// appendHdrs adds fb.hdrs[start:] to the iovecs: to the last one when it
// ends where this starts (copied frames one after the other; not when
// append has moved fb.hdrs since).
func (fb *flushBuf) appendHdrs(start int) {
	end := len(fb.hdrs)
	if k := len(fb.out) - 1; k >= 0 && start > 0 {
		if last := fb.out[k]; len(last) > 0 && &last[len(last)-1] == &fb.hdrs[start-1] {
			fb.out[k] = fb.hdrs[start-len(last) : end : end]
			return
		}
	}
	fb.out = append(fb.out, fb.hdrs[start:end:end])
}

// delivered tells the trackers of the messages taken by the last fill that
// they are written (or dropped), and gives back what they cost to the
// server's budget.
func (c *wsConn) delivered() {
	fb := c.fb
	if fb == nil {
		return
	}
	if fb.inflight != 0 {
		c.sess.srv.charge(-fb.inflight)
		fb.inflight = 0
	}
	if len(fb.tracked) == 0 {
		return
	}
	for _, d := range fb.tracked {
		d.Done()
	}
	clear(fb.tracked)
	fb.tracked = fb.tracked[:0]
}

// consume drops n written bytes from the front of the flush buffer.
func (c *wsConn) consume(n int) {
	out := c.fb.out
	i := 0
	for ; i < len(out) && n >= len(out[i]); i++ {
		n -= len(out[i])
		out[i] = nil
	}
	if i == len(out) {
		// All written (the usual case): keep the array's front, so that
		// the next fill appends without allocating; out[i:] would lose
		// the capacity before it, and every frame would allocate anew.
		c.fb.out = out[:0]
		return
	}
	out = out[i:]
	if len(out) > 0 && n > 0 {
		out[0] = out[0][n:]
	}
	c.fb.out = out
}

// dropFlushBuf gives the flush buffer back once nothing is in flight.
func (c *wsConn) dropFlushBuf() {
	fb := c.fb
	if fb == nil {
		return
	}
	c.fb = nil
	// Past len(fb.out) the array holds no pointer: fill appends from
	// empty, and consume clears what it drops. Clearing the whole
	// capacity (up to 4096 slots of a buffer a burst grew) cost more than
	// the frames of a small flush.
	clear(fb.out)
	fb.out = fb.out[:0]
	if cap(fb.out) > 4096 || cap(fb.hdrs) > 40960 || cap(fb.tracked) > 4096 {
		return
	}
	flushBufPool.Put(fb)
}

// shutdown ends the close handshake from our side: no more writes, and
// the input is drained until the client closes (or CloseTimeout), so that
// unread input does not turn our close into a reset that could destroy
// what we sent last.
func (c *wsConn) shutdown() {
	c.raw.shutdownWrite()
}
