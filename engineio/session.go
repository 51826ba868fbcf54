package engineio

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// sessionState is the life of a session: open, closing (its last packets
// are being delivered), closed (the transport is gone).
type sessionState uint8

const (
	stateOpen sessionState = iota
	stateClosing
	stateClosed
)

// Session is one Engine.IO session: one client, over polling, WebSocket, or
// polling upgraded to WebSocket.
//
// Send, Close and Do may be called from any goroutine; none of them runs
// the handler on the caller's goroutine (see SessionHandler). What is sent waits in
// the session's send queue until its transport takes it: the pending poll
// of a polling client, or the WebSocket writer. The queue is bounded
// (Options.MaxQueuedPackets and MaxQueuedBytes), together with the control
// frames waiting on the session's WebSocket (pongs), by what they cost the
// server (see budget.go); and so are all queues together
// (Options.QueueBudget).
type Session struct {
	// The fields are ordered so that the struct fits its allocation size
	// class (224 bytes; an idle connection's budget,
	// docs/ARCHITECTURE.md): the flags are gathered at the end.
	srv *Server
	id  string
	hs  handshakeInfo // what Request describes

	handler SessionHandler // set under mu once the server's connect returned
	exec    executor       // runs the handler's methods one at a time

	mu sync.Mutex
	ws *wsConn // the WebSocket transport; nil while polling
	// pl is what only a session opened over polling uses (its GETs and
	// POSTs, its upgrade); nil for one opened over WebSocket, which never
	// polls. Set by the handshake before the session is registered.
	pl      *pollState
	queue   []Message
	queued  int64 // what queue costs: payload bytes and bookkeeping
	charged int64 // what queue costs the process-wide budget (shared payloads split)

	// control frames waiting on the session's WebSocket and probe
	// (wsConn.ctrl): how many (nctrl, below), and what they cost
	ctrlQueued int64

	nctrl    int32 // bounded by Options.MaxQueuedPackets
	beat     int32 // 1 + its place in srv.beats' heap; 0 when its timer is not armed
	protocol uint8 // the Engine.IO revision: 4, or 3
	b64      bool  // a v3 client that cannot receive binary over polling
	state    sessionState
	upgraded bool
	overflow bool // the queue overflowed; only Close's packets are accepted

	awaitPong bool // v4: a PING is out
	refreshed bool // v4: the pong deadline was pushed back once already
}

// pollState is the part of a session that only polling uses: a session
// opened over WebSocket (most clients, and every idle connection of the
// budget in docs/ARCHITECTURE.md) does without it. Guarded by Session.mu.
type pollState struct {
	// jsonp is, for a JSONP polling session, the start of each response,
	// `___eio[j](`; nil otherwise. Set by the handshake, read-only afterwards.
	jsonp []byte

	poll   pollWaiter  // the pending GET, woken once; nil when none
	linger *time.Timer // bounds the wait for a last GET after a close

	// upgrade
	probe        *wsConn // a WebSocket being probed for an upgrade
	upgradeTimer *time.Timer

	pollNoop bool // the pending GET was released to let an upgrade go on
	byClient bool // the client sent CLOSE in a POST: the pending GET gets NOOP, not CLOSE
	posting  bool // a POST is being served
}

// pollWaiter is a pending GET: a request net/http serves, waiting on a
// channel (chanWaiter), or one the server serves on a keep-alive
// connection of its own (pollConn). wake is called under the session's
// lock, once: it must not block or take that lock.
type pollWaiter interface{ wake() }

// chanWaiter is the pending GET of servePoll.
type chanWaiter chan struct{}

func (c chanWaiter) wake() { close(c) }

// probeLocked is the WebSocket being probed for an upgrade, or nil. s.mu
// is held.
func (s *Session) probeLocked() *wsConn {
	if s.pl == nil {
		return nil
	}
	return s.pl.probe
}

// monoEpoch is the origin of monoNow.
var monoEpoch = time.Now()

// monoNow is the monotonic clock, in nanoseconds since monoEpoch: a
// deadline in 8 bytes rather than a time.Time's 24, unaffected by changes
// of the wall clock.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }

func newSession(srv *Server, id string, protocol int, r *http.Request) *Session {
	return &Session{
		srv:      srv,
		id:       id,
		protocol: uint8(protocol),
		hs:       newHandshakeInfo(r, time.Now()),
	}
}

// ID is the session id (Engine.IO's sid).
func (s *Session) ID() string { return s.id }

// Protocol is the Engine.IO revision the client speaks: 4, or 3.
func (s *Session) Protocol() int { return int(s.protocol) }

// Request describes the handshake. It is built on each call from the
// compact form the session keeps (see handshakeInfo): a caller that needs
// it more than once keeps it.
func (s *Session) Request() *Request { return s.hs.request() }

// RemoteAddr is the client's address, as net/http reported it in the
// handshake (Request().RemoteAddr, without building the Request).
func (s *Session) RemoteAddr() string { return s.hs.remoteAddr() }

// Transport is "polling" or "websocket".
func (s *Session) Transport() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws != nil {
		return "websocket"
	}
	return "polling"
}

// Closed reports whether the session is closed or closing.
func (s *Session) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state != stateOpen
}

// Waiting reports whether a polling client's GET is waiting for data.
func (s *Session) Waiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pl != nil && s.pl.poll != nil
}

// Queued returns the number of packets waiting to be sent, the engine's
// control frames included, and what they cost in bytes: their payloads and
// the bookkeeping of each (what Options.MaxQueuedBytes bounds).
func (s *Session) Queued() (packets int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) + int(s.nctrl), s.queued + s.ctrlQueued
}

// open queues the OPEN packet, registers the session, asks the server's
// connect function for the handler and starts the heartbeat. c is the
// WebSocket of a session opened over WebSocket, nil for polling.
func (s *Session) open(c *wsConn) {
	o := s.srv.opts
	s.enqueueLocked(Message{b: s.srv.openPacket(s.id, c == nil && !o.DisableUpgrades && s.srv.allowsTransport("websocket"))})
	s.ws = c
	if !s.srv.register(s) {
		s.state = stateClosed
		s.takeQueueLocked()
		s.srv.release()
		if c != nil {
			c.release()
		}
		return
	}
	s.srv.stats.opened(c != nil)
	h := s.srv.connect(s)
	s.mu.Lock()
	s.handler = h
	if s.protocol == 3 {
		s.setTimerLocked(o.PingInterval + o.PingTimeout)
	} else {
		s.setTimerLocked(o.PingInterval)
	}
	if c != nil {
		c.scheduleFlushLocked()
	}
	s.mu.Unlock()
	if c != nil {
		c.start()
	}
}

// openPacket is the OPEN packet of session sid: 0{"sid":…,"upgrades":…,
// "pingInterval":…,"pingTimeout":…,"maxPayload":…}, with "websocket" in
// the upgrades when upgrade is set.
func (srv *Server) openPacket(sid string, upgrade bool) []byte {
	tail := &srv.openTails[0]
	if upgrade {
		tail = &srv.openTails[1]
	}
	if *tail == nil || !validID(sid) {
		return marshalOpen(sid, upgrade, srv.opts)
	}
	// What follows the id is the same for every session: encoded once
	// (NewServer), not with json.Marshal per handshake. Session ids are
	// URL-safe base64 (validID), nothing in them to escape.
	b := make([]byte, 0, len(`0{"sid":"`)+len(sid)+len(*tail))
	b = append(b, `0{"sid":"`...)
	b = append(b, sid...)
	return append(b, *tail...)
}

// marshalOpen encodes the OPEN packet with encoding/json.
func marshalOpen(sid string, upgrade bool, o Options) []byte {
	upgrades := []string{}
	if upgrade {
		upgrades = []string{"websocket"}
	}
	hs, _ := json.Marshal(struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int64    `json:"pingInterval"`
		PingTimeout  int64    `json:"pingTimeout"`
		MaxPayload   int64    `json:"maxPayload"`
	}{sid, upgrades, o.PingInterval.Milliseconds(), o.PingTimeout.Milliseconds(), o.MaxBufferSize})
	return append([]byte{typeOpen}, hs...)
}

// openTail is what follows the session id in the OPEN packet.
func openTail(upgrade bool, o Options) []byte {
	const probe = "x"
	b := marshalOpen(probe, upgrade, o)
	return b[len(`0{"sid":"`+probe):]
}

// Send queues m for the client. It returns ErrClosed once the session is
// closing, and ErrQueueFull when the queue overflows (the handler is then
// told, and must Close the session).
func (s *Session) Send(m Message) error { return s.send([]Message{m}) }

// SendAll queues msgs one after the other, all or none (the header and
// attachments of a binary Socket.IO packet).
func (s *Session) SendAll(msgs ...Message) error { return s.send(msgs) }

func (s *Session) send(msgs []Message) error {
	var n, charge int64
	for i := range msgs {
		n += msgs[i].cost()
		charge += msgs[i].budgetCost()
	}
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.overflow {
		s.mu.Unlock()
		return ErrQueueFull
	}
	if !s.fitsLocked(len(msgs), n) {
		dropped := s.overflowLocked()
		s.mu.Unlock()
		deliveredAll(dropped)
		// Not on this goroutine: Send is called with the caller's locks
		// held (a broadcast's), which the handler may need.
		go s.post(event{kind: evOverflow})
		return ErrQueueFull
	}
	if s.queue == nil && s.ws != nil {
		s.queue = s.ws.spareQueueLocked()
	}
	s.queue = append(s.queue, msgs...)
	s.queued += n
	s.charged += charge
	s.srv.charge(charge)
	s.kickLocked()
	s.mu.Unlock()
	return nil
}

// fitsLocked reports whether packets more packets costing n bytes fit in
// the session's bounds, with what is queued and the control frames.
func (s *Session) fitsLocked(packets int, n int64) bool {
	o := &s.srv.opts
	return len(s.queue)+int(s.nctrl)+packets <= o.MaxQueuedPackets && s.queued+s.ctrlQueued+n <= o.MaxQueuedBytes
}

// overflowLocked marks the session overflowed (a slow consumer) and drops
// its queue and control frames; it returns the dropped packets, whose
// trackers the caller tells once it has let go of s.mu. The caller then
// posts evOverflow, on a goroutine of its own.
func (s *Session) overflowLocked() []Message {
	s.overflow = true
	dropped := s.takeQueueLocked()
	for _, c := range [...]*wsConn{s.ws, s.probeLocked()} {
		if c != nil {
			c.takeCtrlLocked()
		}
	}
	s.srv.stats.overflows.Add(1)
	return dropped
}

// enqueueLocked queues m whatever the bounds (the OPEN packet, Close's
// last packets), and accounts it. s.mu is held.
func (s *Session) enqueueLocked(m Message) {
	if s.queue == nil && s.ws != nil {
		s.queue = s.ws.spareQueueLocked()
	}
	s.queue = append(s.queue, m)
	s.queued += m.cost()
	c := m.budgetCost()
	s.charged += c
	s.srv.charge(c)
}

// takeQueueLocked empties the queue and returns what it held, which is no
// longer accounted. s.mu is held.
func (s *Session) takeQueueLocked() []Message {
	msgs := s.queue
	if s.charged != 0 {
		s.srv.charge(-s.charged)
	}
	s.queue, s.queued, s.charged = nil, 0, 0
	return msgs
}

// TrySend queues msgs only if nothing is waiting to be sent (the client is
// ready for them), and reports whether it did: for volatile packets.
func (s *Session) TrySend(msgs ...Message) bool {
	s.mu.Lock()
	if s.state != stateOpen || s.overflow || len(s.queue) > 0 {
		s.mu.Unlock()
		return false
	}
	s.mu.Unlock()
	return s.send(msgs) == nil
}

// sendControlLocked queues a packet of the engine's own (PING, PONG)
// within the queue's bounds: a client that does not read what it asked
// for (a v3 client's PONGs) is a slow consumer like any other. An
// overflowed session sends none. s.mu is held.
func (s *Session) sendControlLocked(m Message) {
	if s.overflow {
		return
	}
	if !s.fitsLocked(1, m.cost()) {
		// Under s.mu: the trackers only record (see NewDelivery).
		deliveredAll(s.overflowLocked())
		go s.post(event{kind: evOverflow})
		return
	}
	s.enqueueLocked(m)
	s.kickLocked()
}

// kickLocked tells the transport that there is something to send.
func (s *Session) kickLocked() {
	if s.ws != nil {
		s.ws.scheduleFlushLocked()
		return
	}
	s.wakePollLocked()
}

// wakePollLocked releases the pending GET, if any.
func (s *Session) wakePollLocked() {
	if s.pl != nil && s.pl.poll != nil {
		s.pl.poll.wake()
		s.pl.poll = nil
	}
}

// Close closes the session with reason: the packets already queued and
// last are delivered first (within Options.CloseTimeout), then the
// transport is closed (a WebSocket with a 1000 close frame, a polling
// client with a CLOSE packet). The handler's OnClose follows. Later calls
// do nothing.
func (s *Session) Close(reason string, last ...Message) {
	s.close(reason, nil, true, last)
}

// close ends the session. A graceful close delivers what is queued;
// otherwise (the client is gone or broke the protocol) it is dropped.
func (s *Session) close(reason string, err error, graceful bool, last []Message) {
	s.mu.Lock()
	if s.state != stateOpen {
		s.mu.Unlock()
		return
	}
	s.state = stateClosing
	s.srv.beats.stop(s)
	var probe *wsConn
	if pl := s.pl; pl != nil {
		if pl.upgradeTimer != nil {
			pl.upgradeTimer.Stop()
		}
		probe, pl.probe = pl.probe, nil
	}
	var dropped []Message
	if graceful {
		for _, m := range last {
			s.enqueueLocked(m)
		}
	} else {
		dropped = s.takeQueueLocked()
	}
	finish := false
	switch {
	case s.ws != nil:
		s.ws.closeLocked(graceful)
	case s.pl == nil:
		finish = true // opened over WebSocket, which is gone (never here: ws stays set)
	case s.pl.poll != nil:
		s.wakePollLocked() // the GET delivers the queue and a CLOSE packet, then finishes
	case graceful:
		// Wait for the client's next GET, which gets the queue and CLOSE.
		s.pl.linger = time.AfterFunc(s.srv.opts.CloseTimeout, s.finish)
	default:
		finish = true
	}
	s.mu.Unlock()
	deliveredAll(dropped)
	if probe != nil {
		probe.abort()
	}
	s.srv.stats.closed(reason)
	s.srv.log.Debug("session closed", "sid", s.id, "transport", s.Transport(), "remote", s.hs.remoteAddr(),
		"reason", describe(reason, err))
	s.post(event{kind: evClose, reason: reason, err: err})
	if finish {
		s.finish()
	}
}

func describe(reason string, err error) string {
	if err == nil {
		return reason
	}
	return reason + ": " + err.Error()
}

// finish forgets a closed session: its transport is done.
func (s *Session) finish() {
	s.mu.Lock()
	if s.state == stateClosed {
		s.mu.Unlock()
		return
	}
	s.state = stateClosed
	dropped := s.takeQueueLocked()
	if s.pl != nil && s.pl.linger != nil {
		s.pl.linger.Stop()
	}
	ws := s.ws
	s.mu.Unlock()
	deliveredAll(dropped)
	s.srv.stats.finished(ws != nil)
	s.srv.unregister(s)
}

// receive handles one packet from the client's current transport.
func (s *Session) receive(p packet) {
	switch p.typ {
	case typeMessage:
		if !s.heard() {
			return // closing: what the client sends now is dropped, as in Node
		}
		s.srv.stats.received(len(p.data))
		s.postFromReader(event{kind: evMessage, data: p.data, binary: p.binary})
	case typePong:
		if s.protocol == 3 {
			s.close("transport error", errHeartbeatDirection, false, nil)
			return
		}
		s.onPong()
	case typePing:
		if s.protocol != 3 {
			s.close("transport error", errHeartbeatDirection, false, nil)
			return
		}
		s.mu.Lock()
		if s.state == stateOpen {
			o := s.srv.opts
			s.setTimerLocked(o.PingInterval + o.PingTimeout)
			s.sendControlLocked(pongMessage)
		}
		s.mu.Unlock()
	case typeClose:
		s.close("transport close", nil, false, nil)
	default:
		// OPEN, UPGRADE and NOOP from the client are ignored, as in Node.
		_ = s.heard()
	}
}

// heard notes a packet from the client and reports whether the session is
// open. A v4 client's packet while a PING is out pushes the pong deadline
// back, once, as Node does.
func (s *Session) heard() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateOpen || s.srv.shutting.Load() {
		return false
	}
	if s.protocol != 3 && s.awaitPong && !s.refreshed {
		s.refreshed = true
		s.setTimerLocked(s.srv.opts.PingTimeout)
	}
	return true
}

// onPong schedules the next PING a pingInterval after this PONG.
func (s *Session) onPong() {
	s.mu.Lock()
	if s.state == stateOpen && s.awaitPong {
		s.awaitPong = false
		s.setTimerLocked(s.srv.opts.PingInterval)
	}
	s.mu.Unlock()
}

// setTimerLocked arms the heartbeat timer to fire in d.
func (s *Session) setTimerLocked(d time.Duration) {
	s.srv.beats.set(s, monoNow()+int64(d))
}

// onTimer runs on a goroutine of its own (see heartbeats): time to PING (v4), or a PING (v4)
// or the client's PING (v3) is overdue.
func (s *Session) onTimer() {
	s.mu.Lock()
	if s.state != stateOpen || s.srv.beats.pending(s) {
		s.mu.Unlock() // closed, or a stale firing of a timer that was armed again since
		return
	}
	if s.protocol == 3 || s.awaitPong {
		s.mu.Unlock()
		s.close("ping timeout", nil, false, nil)
		return
	}
	s.awaitPong, s.refreshed = true, false
	s.setTimerLocked(s.srv.opts.PingTimeout)
	s.sendControlLocked(pingMessage)
	s.mu.Unlock()
}
