package socketio

import (
	"bytes"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// Hooks are callbacks at the seams of a server's life, for metrics and
// monitoring (a Prometheus exporter, the Admin UI). Every field may be nil;
// a server without hooks pays one atomic load per event, connection and
// broadcast, and allocates nothing for them.
//
// Hooks run synchronously on the goroutine named by each field, and never
// with a lock of the server's or the engine's held: they may emit, join,
// leave, disconnect, count and fetch sockets. A slow hook delays the
// socket, or the broadcast, it is called for, and only that one.
type Hooks struct {
	// Connect is called when a socket has joined its namespace (its
	// CONNECT answer queued, its own room and any recovered rooms joined),
	// before the namespace's connection handlers, on the session's handler
	// goroutine (the one that read the client's CONNECT, or the session's
	// executor).
	Connect func(s *Socket)
	// ConnectError is called when a CONNECT is refused, by a middleware or
	// because the namespace does not exist (nsp is then nil: the name is
	// the client's, unbounded), on the session's handler goroutine.
	ConnectError func(nsp *Namespace, err error)
	// Disconnect is called once when a socket has left its namespace,
	// after its own disconnect handlers, on the session's handler
	// goroutine, with their reason and cause. s.Rooms still lists the
	// rooms it was in.
	Disconnect func(s *Socket, reason string, cause error)
	// Join and Leave are called when a connected socket joins or leaves a
	// room (Socket.Join and Leave, SocketsJoin and SocketsLeave, from this
	// node or another), on the goroutine that made it join or leave. Not
	// for the rooms a socket is in when it connects or disconnects:
	// Connect and Disconnect cover those.
	Join, Leave func(s *Socket, room string)
	// Upgrade is called when a socket's session moved from polling to
	// WebSocket, on the session's handler goroutine.
	Upgrade func(s *Socket)
	// EventReceived is called for each event a socket receives, before its
	// middlewares and handlers (so also for events a middleware refuses),
	// on the session's handler goroutine. size is the packet's JSON
	// payload in bytes, its binary attachments included.
	EventReceived func(s *Socket, event string, size int)
	// EventSent is called once per event this node emits, after it was
	// queued for its local recipients: a broadcast of this node or of
	// another (LocalNamespace.Deliver), or Socket.Emit (recipients is then 1,
	// or 0 when the socket is gone). size is one packet's JSON payload in
	// bytes, attachments included, as for EventReceived (with recovery,
	// the offset argument counts). It runs on the emitter's goroutine.
	// Acknowledgements are not reported.
	EventSent func(nsp *Namespace, event string, size, recipients int)
	// BroadcastDelivered is called when a broadcast (of this node or of
	// another) has left the send queue of every local recipient, written
	// to its connection or dropped with it, with the number of recipients
	// and the time since the broadcast was called: the fan-out latency.
	// Broadcasts are sampled: while one broadcast of a namespace is
	// followed (two atomic additions per recipient), the namespace's next
	// ones are not; so all of them are when they are rarer than their
	// fan-out time, and the cost stays a small share of the fan-out's when
	// they are not. It runs on a goroutine of its own, started when the
	// last copy was written or dropped, with no lock held; while it runs,
	// the namespace's broadcasts are not followed. A broadcast whose last
	// recipient's connection dies while the write is under way may go
	// unreported.
	BroadcastDelivered func(nsp *Namespace, recipients int, elapsed time.Duration)
}

// hookSet is every Hooks added to a server, by kind: what the server calls.
// It is immutable; AddHooks replaces it.
type hookSet struct {
	connect       []func(*Socket)
	connectError  []func(*Namespace, error)
	disconnect    []func(*Socket, string, error)
	join, leave   []func(*Socket, string)
	upgrade       []func(*Socket)
	eventReceived []func(*Socket, string, int)
	eventSent     []func(*Namespace, string, int, int)
	delivered     []func(*Namespace, int, time.Duration)
}

func (hs *hookSet) with(h *Hooks) *hookSet {
	out := &hookSet{}
	if hs != nil {
		*out = *hs
	}
	if h.Connect != nil {
		out.connect = append(out.connect[:len(out.connect):len(out.connect)], h.Connect)
	}
	if h.ConnectError != nil {
		out.connectError = append(out.connectError[:len(out.connectError):len(out.connectError)], h.ConnectError)
	}
	if h.Disconnect != nil {
		out.disconnect = append(out.disconnect[:len(out.disconnect):len(out.disconnect)], h.Disconnect)
	}
	if h.Join != nil {
		out.join = append(out.join[:len(out.join):len(out.join)], h.Join)
	}
	if h.Leave != nil {
		out.leave = append(out.leave[:len(out.leave):len(out.leave)], h.Leave)
	}
	if h.Upgrade != nil {
		out.upgrade = append(out.upgrade[:len(out.upgrade):len(out.upgrade)], h.Upgrade)
	}
	if h.EventReceived != nil {
		out.eventReceived = append(out.eventReceived[:len(out.eventReceived):len(out.eventReceived)], h.EventReceived)
	}
	if h.EventSent != nil {
		out.eventSent = append(out.eventSent[:len(out.eventSent):len(out.eventSent)], h.EventSent)
	}
	if h.BroadcastDelivered != nil {
		out.delivered = append(out.delivered[:len(out.delivered):len(out.delivered)], h.BroadcastDelivered)
	}
	return out
}

// AddHooks adds h to the server's hooks (those of Options.Hooks and of
// earlier calls stay). Add them before clients connect: hooks added later
// see only what happens from then on. Safe for concurrent use.
func (s *Server) AddHooks(h *Hooks) {
	if h == nil {
		return
	}
	s.hookMu.Lock()
	s.hooks.Store(s.hooks.Load().with(h))
	s.hookMu.Unlock()
}

// The calls, each a no-op on a nil set.

func (hs *hookSet) onConnect(s *Socket) {
	if hs == nil {
		return
	}
	for _, f := range hs.connect {
		f(s)
	}
}

func (hs *hookSet) onConnectError(nsp *Namespace, err error) {
	if hs == nil {
		return
	}
	for _, f := range hs.connectError {
		f(nsp, err)
	}
}

func (hs *hookSet) onDisconnect(s *Socket, reason string, cause error) {
	if hs == nil {
		return
	}
	for _, f := range hs.disconnect {
		f(s, reason, cause)
	}
}

func (hs *hookSet) onRooms(fns []func(*Socket, string), s *Socket, rooms []string) {
	for _, r := range rooms {
		for _, f := range fns {
			f(s, r)
		}
	}
}

func (hs *hookSet) onUpgrade(s *Socket) {
	if hs == nil {
		return
	}
	for _, f := range hs.upgrade {
		f(s)
	}
}

func (hs *hookSet) onEventReceived(s *Socket, event string, size int) {
	if hs == nil {
		return
	}
	for _, f := range hs.eventReceived {
		f(s, event, size)
	}
}

func (hs *hookSet) onEventSent(nsp *Namespace, event string, msgs []engineio.Message, recipients int) {
	if hs == nil || len(hs.eventSent) == 0 {
		return
	}
	// The event's JSON array and attachments, as EventReceived counts
	// them: the packet without its header (type, namespace, ack id).
	size := 0
	for _, m := range msgs {
		size += len(m.Payload())
	}
	if len(msgs) > 0 && !msgs[0].IsBinary() { // msgpack: the whole packet
		size -= max(0, bytes.IndexByte(msgs[0].Payload(), '['))
	}
	for _, f := range hs.eventSent {
		f(nsp, event, size, recipients)
	}
}

// fanout follows one broadcast to its local recipients.
type fanout struct {
	d          *engineio.Delivery
	recipients int // set by the broadcaster before its Done
}

// fanout starts following a broadcast, when a hook wants its fan-out
// latency and no other broadcast of the namespace is followed; nil
// otherwise. Following one costs two contended atomic additions per
// recipient, so it is sampled: one broadcast at a time per namespace, which
// is every broadcast when they are rarer than their fan-out time, and a
// bounded share of the work when they are not.
func (hs *hookSet) fanout(nsp *Namespace) *fanout {
	if hs == nil || len(hs.delivered) == 0 || !nsp.tracking.CompareAndSwap(false, true) {
		return nil
	}
	f := &fanout{}
	start := time.Now()
	fns := hs.delivered
	f.d = engineio.NewDelivery(func() {
		// The last write or drop may happen anywhere: on a flush
		// goroutine, or inside a fan-out, under the order lock, when a
		// queue overflows. The hooks run on a goroutine of their own; the
		// namespace's next broadcast is followed once they returned, so
		// there is one such goroutine per namespace at most.
		elapsed := time.Since(start)
		go func() {
			defer nsp.tracking.Store(false)
			for _, fn := range fns {
				fn(nsp, f.recipients, elapsed)
			}
		}()
	})
	return f
}
