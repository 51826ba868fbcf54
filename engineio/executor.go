package engineio

import "sync"

// Event kinds the executor delivers to the handler.
const (
	evMessage uint8 = iota
	evOverflow
	evUpgrade
	evFunc
	evClose
)

type event struct {
	kind   uint8
	binary bool
	data   []byte
	reason string
	err    error
	fn     func()
}

// Bounds of a session's event queue: the client's messages waiting for
// its handler. A reader that would go past them waits (and reads nothing
// more from the connection meanwhile) until the handler has taken some,
// so that a client that sends faster than its handler handles is pushed
// back by TCP instead of being read into memory. One message is always
// accepted, whatever its size (up to Options.MaxBufferSize). A reader that
// waits reads no PONG either: a handler busy for longer than the
// heartbeat allows, with a client that keeps sending, ends the session
// with "ping timeout", which releases the reader (what the client sends
// to a closing session is dropped).
const (
	maxPendingMessages = 256
	maxPendingBytes    = 256 << 10
)

// executor runs a session's handler calls one at a time, in the order
// they were posted, and never on a goroutine of someone else's:
//
//   - the session's reader (a WebSocket reader, a polling POST's request
//     goroutine) that posts a message while no call runs runs the queue
//     itself, so a slow handler holds up the reading of its own
//     connection and nothing else;
//   - anything posted from elsewhere (Do, Close, a heartbeat or ack timer,
//     the overflow report) is queued, and when no call runs, a goroutine
//     of the session's own is started to run the queue; the caller never
//     runs a handler.
//
// A call posted from inside a handler (Close from OnMessage) runs right
// after it. OnClose is the last call; nothing runs after it.
type executor struct {
	mu      sync.Mutex
	running bool  // a goroutine runs the queue
	closing bool  // OnClose is queued: the client's messages are dropped
	closed  bool  // OnClose was delivered; nothing follows it
	msgs    int32 // evMessage events in q (at most maxPendingMessages); beside the flags, it fills their word
	q       []event
	bytes   int64         // their data
	room    chan struct{} // closed when a waiting reader may go on; nil when none waits
}

// post queues ev from a goroutine that is not the session's reader: Do,
// Close, timers, another session's handler. It never runs a handler on
// the caller's goroutine, and never waits.
func (s *Session) post(ev event) {
	e := &s.exec
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	if ev.kind == evClose {
		e.closing = true
		e.wakeLocked() // a reader waiting for room drops its message
	}
	e.q = append(e.q, ev)
	if e.running {
		e.mu.Unlock()
		return
	}
	e.running = true
	e.mu.Unlock()
	go func() {
		e.mu.Lock()
		s.runLocked()
	}()
}

// postFromReader queues a message the session's reader received. When no
// handler call runs, the reader runs the queue itself; when one does (on
// an executor goroutine, or on the session's other reader during an
// upgrade) and the queue is at its bounds, the reader waits for room, so
// the connection is not read meanwhile. A message that arrives once the
// session is closing is dropped, as in Node.
func (s *Session) postFromReader(ev event) {
	e := &s.exec
	n := int64(len(ev.data))
	e.mu.Lock()
	for {
		if e.closing || e.closed {
			e.mu.Unlock()
			return
		}
		if !e.running || e.msgs == 0 || (e.msgs < maxPendingMessages && e.bytes+n <= maxPendingBytes) {
			break
		}
		if e.room == nil {
			e.room = make(chan struct{})
		}
		room := e.room
		e.mu.Unlock()
		<-room
		e.mu.Lock()
	}
	e.q = append(e.q, ev)
	e.msgs++
	e.bytes += n
	if e.running {
		e.mu.Unlock()
		return
	}
	e.running = true
	s.runLocked()
}

// runLocked runs the queue until it is empty (or OnClose ran), then gives
// up the running role. e.mu is held, and released on return.
func (s *Session) runLocked() {
	e := &s.exec
	for len(e.q) > 0 && !e.closed {
		ev := e.q[0]
		e.q[0] = event{}
		e.q = e.q[1:]
		switch ev.kind {
		case evMessage:
			e.msgs--
			e.bytes -= int64(len(ev.data))
			e.wakeLocked()
		case evClose:
			e.closed = true
		}
		e.mu.Unlock()
		s.dispatch(ev)
		e.mu.Lock()
	}
	e.running = false
	e.q = nil
	e.msgs, e.bytes = 0, 0
	e.wakeLocked()
	e.mu.Unlock()
}

// wakeLocked lets the readers waiting for room look again.
func (e *executor) wakeLocked() {
	if e.room != nil {
		close(e.room)
		e.room = nil
	}
}

// pending returns the client's messages waiting for the handler, and
// their bytes.
func (e *executor) pending() (msgs int, bytes int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return int(e.msgs), e.bytes
}

// Do runs fn one at a time with the handler's methods, after the calls in
// progress and queued, on the session's reader or on a goroutine of the
// session's own: never on the caller's goroutine, even when no handler
// runs. So a caller from elsewhere (another session's handler, a timer,
// an adapter, Server.Close) never runs this session's handlers, and does
// not wait for them. Nothing runs after OnClose: fn is dropped then.
func (s *Session) Do(fn func()) { s.post(event{kind: evFunc, fn: fn}) }

func (s *Session) dispatch(ev event) {
	if ev.kind == evFunc {
		ev.fn()
		return
	}
	s.mu.Lock()
	h := s.handler
	s.mu.Unlock()
	if h == nil {
		return
	}
	switch ev.kind {
	case evMessage:
		h.OnMessage(ev.data, ev.binary)
	case evOverflow:
		h.OnQueueOverflow()
	case evUpgrade:
		if u, ok := h.(interface{ OnUpgrade() }); ok {
			u.OnUpgrade()
		}
	case evClose:
		h.OnClose(ev.reason, ev.err)
	}
}
