package socketio

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// Socket is a client's connection to one namespace.
//
// Its handlers run one at a time, in the order of the client's packets (see
// Server). Its other methods are safe for concurrent use.
type Socket struct {
	nsp       *Namespace
	client    *client
	id        string
	ext       *socketExtra // set before the socket is connected; nil without auth or recovery
	recovered bool

	// guarded by nsp.mu (beside recovered, so that the struct fits
	// the 192-byte allocation class: an idle connection's budget)
	connected bool
	index     int32    // in nsp.list
	rooms     []string // rooms joined, its own room aside

	mu           sync.Mutex
	handlers     []handler
	anys         *anyListeners // nil until OnAny or OnAnyOutgoing; replaced, never changed
	middlewares  []func(*Event) error
	onDisconnect []func(reason string, cause error)
	rare         *socketRare // nil until OnDisconnecting or OnError
	acks         map[int64]*pendingAck
	data         any
}

// socketRare holds the listeners few sockets have, allocated for the first
// (the Socket fits the 224-byte allocation class without them: an idle
// connection's budget, docs/ARCHITECTURE.md).
type socketRare struct {
	onDisconnecting []func(reason string)
	onError         []func(error)
}

// socketExtra is what a CONNECT brings that most sockets lack (the chat's
// clients send no auth, and recovery is off by default): apart from Socket
// so that those do not pay for it (docs/ARCHITECTURE.md "Per-connection
// budget").
type socketExtra struct {
	pid  string          // the recovery session id; "" without recovery. Read-only once connected
	auth json.RawMessage // guarded by Socket.mu (ForgetAuth)
}

// pid is the recovery session id; "" without recovery.
func (s *Socket) pid() string {
	if s.ext == nil {
		return ""
	}
	return s.ext.pid
}

// setPID sets the recovery session id, before the socket is connected.
func (s *Socket) setPID(pid string) {
	if s.ext == nil {
		s.ext = &socketExtra{}
	}
	s.ext.pid = pid
}

// rareLocked returns s.rare, allocated if needed. s.mu is held.
func (s *Socket) rareLocked() *socketRare {
	if s.rare == nil {
		s.rare = &socketRare{}
	}
	return s.rare
}

type handler struct {
	event string
	fn    func(*Event)
	id    uint64 // what its remove function removes
	once  bool
}

type anyHandler struct {
	id uint64
	fn func(*Event)
}

type outgoingHandler struct {
	id uint64
	fn func(event string, args []Arg)
}

// AckFunc, given as the last argument of an emit, asks the client for an
// acknowledgement and receives it: the client's arguments, or an error
// (timeout, disconnection).
type AckFunc func(args []Arg, err error)

// ErrAckTimeout is given to an AckFunc whose acknowledgement did not come
// in time (Node's "operation has timed out").
var ErrAckTimeout = errors.New("operation has timed out")

// ErrDisconnected is given to an AckFunc whose socket disconnected before
// the acknowledgement came (the message of Node's client in that case).
var ErrDisconnected = errors.New("socket has been disconnected")

type pendingAck struct {
	fn    AckFunc
	timer *time.Timer
}

// ID is the socket's id (not the Engine.IO session's, which is private).
func (s *Socket) ID() string { return s.id }

// Namespace is the socket's namespace.
func (s *Socket) Namespace() *Namespace { return s.nsp }

// Recovered reports whether the socket is a recovered one: same id, rooms
// and data as before its disconnection, missed broadcasts delivered.
func (s *Socket) Recovered() bool { return s.recovered }

// Conn is the Engine.IO session under the socket.
func (s *Socket) Conn() *engineio.Session { return s.client.conn }

// Connected reports whether the socket is connected.
func (s *Socket) Connected() bool {
	s.nsp.mu.Lock()
	defer s.nsp.mu.Unlock()
	return s.connected
}

// Handshake describes the connection, as Node's socket.handshake.
type Handshake struct {
	Headers http.Header // the handshake request's headers
	Time    time.Time   // when the session was opened
	Address string      // the client's address (the request's RemoteAddr)
	XDomain bool        // whether the request had an Origin header (cross-domain)
	Secure  bool        // whether the request came over TLS
	URL     string      // the handshake request's URI
	Query   url.Values  // its query parameters
	// Auth is the client's auth payload (a JSON object), or nil.
	Auth json.RawMessage
}

// Handshake returns the details of the socket's connection. It is built
// on each call from the compact form the session keeps of its handshake
// (engineio.Session.Request): Headers and Query are new maps, which the
// caller may keep or change; a caller that needs them repeatedly keeps
// them rather than calling Handshake again.
func (s *Socket) Handshake() Handshake {
	r := s.client.conn.Request()
	auth := s.Auth()
	h := Handshake{
		Headers: r.Header,
		Time:    r.Time,
		Address: r.RemoteAddr,
		XDomain: r.Header.Get("Origin") != "",
		Secure:  r.Secure,
		Auth:    auth,
	}
	if r.URL != nil {
		h.URL = r.URL.RequestURI()
		h.Query = r.URL.Query()
	}
	return h
}

// Auth is the auth payload of the client's CONNECT (Handshake().Auth),
// without building the rest of the handshake.
func (s *Socket) Auth() json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ext == nil {
		return nil
	}
	return s.ext.auth
}

// ForgetAuth drops the client's auth payload, for a middleware that has
// checked credentials in it: Handshake().Auth is nil afterwards, and
// FetchSockets (on this node or another) no longer shows it.
func (s *Socket) ForgetAuth() {
	s.mu.Lock()
	if s.ext != nil {
		s.ext.auth = nil
	}
	s.mu.Unlock()
}

// Data returns the socket's data (Node's socket.data), kept by recovery
// and shown to other nodes by FetchSockets.
func (s *Socket) Data() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// SetData replaces the socket's data.
func (s *Socket) SetData(v any) {
	s.mu.Lock()
	s.data = v
	s.mu.Unlock()
	s.persistSession()
}

// On adds a handler for event and returns a function that removes it.
// Handlers add up, as in Node: every handler of an event runs, in the
// order they were added (see Off to remove them all, Once for one call).
func (s *Socket) On(event string, fn func(*Event)) (remove func()) {
	return s.addHandler(event, fn, false)
}

// OnAny is called for every event, before its own handlers. It returns a
// function that removes it.
func (s *Socket) OnAny(fn func(*Event)) (remove func()) {
	id := listenerIDs.Add(1)
	s.updateAnys(func(a *anyListeners) { a.in = append(slices.Clip(a.in), anyHandler{id, fn}) })
	return func() {
		s.updateAnys(func(a *anyListeners) {
			a.in = slices.DeleteFunc(slices.Clone(a.in), func(h anyHandler) bool { return h.id == id })
		})
	}
}

// Use adds an event middleware, run for each event before the handlers.
// An error drops the event and is handed to the OnError handlers.
func (s *Socket) Use(fn func(*Event) error) {
	s.mu.Lock()
	s.middlewares = append(s.middlewares, fn)
	s.mu.Unlock()
}

// OnError is called with what an event middleware refused.
func (s *Socket) OnError(fn func(error)) {
	s.mu.Lock()
	r := s.rareLocked()
	r.onError = append(r.onError, fn)
	s.mu.Unlock()
}

// OnDisconnecting is called when the socket is about to disconnect, while
// it is still in its rooms.
func (s *Socket) OnDisconnecting(fn func(reason string)) {
	s.mu.Lock()
	r := s.rareLocked()
	r.onDisconnecting = append(r.onDisconnecting, fn)
	s.mu.Unlock()
}

// OnDisconnect is called once when the socket disconnects, with Node's
// reason ("transport close", "client namespace disconnect", …) and a
// cause when there is one (ErrSlowConsumer, a protocol error).
func (s *Socket) OnDisconnect(fn func(reason string, cause error)) {
	s.mu.Lock()
	s.onDisconnect = append(s.onDisconnect, fn)
	s.mu.Unlock()
}

// Rooms returns the rooms the socket is in, its own room first.
func (s *Socket) Rooms() []string {
	s.nsp.mu.Lock()
	defer s.nsp.mu.Unlock()
	return append([]string{s.id}, s.rooms...)
}

// Join adds the socket to rooms.
func (s *Socket) Join(rooms ...string) {
	srv := s.nsp.srv
	hooks := srv.hooks.Load()
	report := hooks != nil && len(hooks.join) > 0
	var joined []string
	s.nsp.mu.Lock()
	for _, r := range rooms {
		if r == s.id || slices.Contains(s.rooms, r) {
			continue
		}
		s.rooms = append(s.rooms, r)
		if s.connected {
			s.nsp.roomAddLocked(r, s)
			if report {
				joined = append(joined, r)
			}
		}
	}
	s.nsp.mu.Unlock()
	s.persistSession()
	if report {
		hooks.onRooms(hooks.join, s, joined)
	}
}

// Leave takes the socket out of rooms (not out of its own room).
func (s *Socket) Leave(rooms ...string) {
	srv := s.nsp.srv
	hooks := srv.hooks.Load()
	report := hooks != nil && len(hooks.leave) > 0
	var left []string
	s.nsp.mu.Lock()
	for _, r := range rooms {
		if i := slices.Index(s.rooms, r); i >= 0 {
			s.rooms = slices.Delete(s.rooms, i, i+1)
			if s.connected {
				s.nsp.roomDelLocked(r, s)
				if report {
					left = append(left, r)
				}
			}
		}
	}
	s.nsp.mu.Unlock()
	s.persistSession()
	if report {
		hooks.onRooms(hooks.leave, s, left)
	}
}

// Emit sends event to the client. With an AckFunc as last argument, the
// client is asked to acknowledge (see Timeout). With connection state
// recovery on, the event is kept for recovery, as in Node.
func (s *Socket) Emit(event string, args ...any) error { return s.emit(0, false, event, args) }

// Timeout returns an emitter whose acknowledgements fail with
// ErrAckTimeout after d.
func (s *Socket) Timeout(d time.Duration) *Emitter { return &Emitter{s: s, timeout: d} }

// Compress(false) returns an emitter whose events are sent without
// WebSocket compression, whatever their size (Node's
// socket.compress(false)); compression applies only to clients that
// negotiated it (engineio.Options.PerMessageDeflate).
func (s *Socket) Compress(compress bool) *Emitter { return &Emitter{s: s, noCompress: !compress} }

// Emitter emits with options (see Socket.Timeout, Socket.Compress).
type Emitter struct {
	s          *Socket
	timeout    time.Duration
	noCompress bool
}

// Timeout sets the emitter's acknowledgement timeout (see Socket.Timeout).
func (e *Emitter) Timeout(d time.Duration) *Emitter {
	c := *e
	c.timeout = d
	return &c
}

// Compress sets whether the emitter's events may be compressed (see
// Socket.Compress).
func (e *Emitter) Compress(compress bool) *Emitter {
	c := *e
	c.noCompress = !compress
	return &c
}

// Emit is Socket.Emit with the emitter's options.
func (e *Emitter) Emit(event string, args ...any) error {
	return e.s.emit(e.timeout, e.noCompress, event, args)
}

func (s *Socket) emit(timeout time.Duration, noCompress bool, event string, args []any) error {
	a, ack, err := encodeArgs(args)
	if err != nil {
		return err
	}
	_, err = s.emitArgs(timeout, noCompress, event, a, ack)
	return err
}

// emitArgs sends an event, asking for an acknowledgement with ack; it
// returns the acknowledgement's id.
func (s *Socket) emitArgs(timeout time.Duration, noCompress bool, event string, a []Arg, ack AckFunc) (int64, error) {
	if reservedEvents[event] || event == "connection" {
		return -1, fmt.Errorf("socketio: %q is a reserved event name", event)
	}
	s.notifyOutgoing(event, a)
	if ack == nil && s.nsp.log != nil {
		// Through the broadcast path, so that recovery keeps it.
		// With a SessionAdapter, through the cluster's log, as Node does.
		s.nsp.deliver(event, a, BroadcastOptions{Rooms: []string{s.id}, NoCompress: noCompress}, s.nsp.sessionAdapter() != nil)
		return -1, nil
	}
	id := int64(-1)
	if ack != nil {
		id = s.nsp.nextAckID()
		s.registerAck(id, ack, timeout)
	}
	msgs := encodeEventFor(s.client.kind(), s.nsp.name, id, event, a)
	if noCompress {
		uncompressed(msgs)
	}
	err := s.send(msgs)
	if hooks := s.nsp.srv.hooks.Load(); hooks != nil {
		n := 0
		if err == nil {
			n = 1
		}
		hooks.onEventSent(s.nsp, event, msgs, n)
	}
	return id, err
}

// send queues the messages of one packet.
func (s *Socket) send(msgs []engineio.Message) error {
	if len(msgs) == 1 {
		return s.client.conn.Send(msgs[0])
	}
	return s.client.conn.SendAll(msgs...)
}

func (s *Socket) registerAck(id int64, fn AckFunc, timeout time.Duration) {
	p := &pendingAck{fn: fn}
	s.mu.Lock()
	if s.acks == nil {
		s.acks = make(map[int64]*pendingAck)
	}
	s.acks[id] = p
	if timeout > 0 {
		p.timer = time.AfterFunc(timeout, func() {
			s.mu.Lock()
			_, waiting := s.acks[id]
			delete(s.acks, id)
			s.mu.Unlock()
			if waiting {
				s.client.conn.Do(func() { fn(nil, ErrAckTimeout) })
			}
		})
	}
	s.mu.Unlock()
}

// encodeArgs turns emit arguments into Args, taking an AckFunc from the end.
func encodeArgs(args []any) ([]Arg, AckFunc, error) {
	var ack AckFunc
	if n := len(args); n > 0 {
		switch f := args[n-1].(type) {
		case AckFunc:
			ack, args = f, args[:n-1]
		case func([]Arg, error):
			ack, args = f, args[:n-1]
		}
	}
	out := make([]Arg, len(args))
	for i, v := range args {
		a, err := ToArg(v)
		if err != nil {
			return nil, nil, err
		}
		out[i] = a
	}
	return out, ack, nil
}

// Broadcast selects every socket of the namespace but this one.
func (s *Socket) Broadcast() *BroadcastOperator {
	return &BroadcastOperator{nsp: s.nsp, opts: BroadcastOptions{Except: []string{s.id}}}
}

// To selects the sockets in rooms, this one excepted.
func (s *Socket) To(rooms ...string) *BroadcastOperator { return s.Broadcast().To(rooms...) }

// Except selects the sockets in none of rooms, this one excepted.
func (s *Socket) Except(rooms ...string) *BroadcastOperator { return s.Broadcast().Except(rooms...) }

// Disconnect disconnects the socket: the client receives a DISCONNECT
// packet ("io server disconnect"). With close, the whole Engine.IO session
// is closed too (every namespace of the client), after what is queued has
// been delivered. The disconnect handlers run one at a time with the
// socket's other handlers, right after those in progress and queued, on
// the session's goroutine: never on the caller's, so Disconnect returns
// at once, and may return before they ran.
func (s *Socket) Disconnect(close bool) {
	c := s.client
	c.conn.Do(func() {
		if close {
			c.disconnectAll(nil)
			return
		}
		if s.leave(ReasonServerNamespaceDisconnect, nil) {
			_ = c.conn.Send(encodeControlFor(c.kind(), typeDisconnect, s.nsp.name, nil))
			s.finishDisconnect(ReasonServerNamespaceDisconnect, nil)
		}
	})
}

// leave runs the disconnecting handlers, then takes the socket out of its
// namespace (keeping its state for recovery when the reason allows) and
// its client. It reports false when the socket had left already. It runs
// on the session's handler goroutine.
func (s *Socket) leave(reason string, cause error) bool {
	s.nsp.mu.Lock()
	connected := s.connected
	s.nsp.mu.Unlock()
	if !connected {
		return false
	}
	var disconnecting []func(reason string)
	s.mu.Lock()
	if s.rare != nil {
		disconnecting = s.rare.onDisconnecting
	}
	s.mu.Unlock()
	for _, fn := range disconnecting {
		fn(reason)
	}
	s.nsp.mu.Lock()
	if !s.connected {
		s.nsp.mu.Unlock()
		return false
	}
	if s.nsp.log != nil && recoverable[reason] {
		s.nsp.log.persistLocked(s)
	}
	sa := s.nsp.sessionAdapter()
	if sa != nil && s.pid() != "" {
		if recoverable[reason] {
			st := s.sessionStateLocked()
			st.Disconnected = true
			s.nsp.persistLocked(st)
		} else {
			s.nsp.dropLocked(s.pid())
		}
	}
	s.nsp.removeLocked(s)
	s.nsp.mu.Unlock()
	if sa != nil {
		s.nsp.outbox.publish(sa)
	}
	s.client.remove(s)
	s.nsp.cleanupIfEmpty()
	return true
}

// finishDisconnect fails the acknowledgements still awaited (their
// AckFuncs get ErrDisconnected) and runs the disconnect handlers.
func (s *Socket) finishDisconnect(reason string, cause error) {
	s.mu.Lock()
	acks := s.acks
	s.acks = nil
	handlers := s.onDisconnect
	s.mu.Unlock()
	for _, p := range acks {
		if p.timer != nil {
			p.timer.Stop()
		}
		p.fn(nil, ErrDisconnected)
	}
	for _, fn := range handlers {
		fn(reason, cause)
	}
	s.nsp.srv.hooks.Load().onDisconnect(s, reason, cause)
}

// onPacket handles a packet for this socket.
func (s *Socket) onPacket(p *packet) error {
	switch p.typ {
	case typeEvent, typeBinaryEvent:
		return s.onEvent(p)
	case typeAck, typeBinaryAck:
		return s.onAck(p)
	case typeDisconnect:
		if s.leave(ReasonClientNamespaceDisconnect, nil) {
			s.finishDisconnect(ReasonClientNamespaceDisconnect, nil)
		}
	}
	return nil
}

func (s *Socket) onEvent(p *packet) error {
	args, err := p.argsFrom(1)
	if err != nil {
		return err
	}
	ev := &Event{Name: p.eventName(), Args: args, socket: s, id: p.id}
	if hooks := s.nsp.srv.hooks.Load(); hooks != nil {
		size := len(p.data)
		for _, b := range p.bins {
			size += len(b)
		}
		hooks.onEventReceived(s, ev.Name, size)
	}
	s.dispatch(ev)
	return nil
}

// dispatch runs the middlewares and handlers of an event.
func (s *Socket) dispatch(ev *Event) {
	s.mu.Lock()
	mws := s.middlewares
	var anys []anyHandler
	if s.anys != nil {
		anys = s.anys.in
	}
	fns := s.takeHandlersLocked(ev.Name)
	s.mu.Unlock()
	for _, mw := range mws {
		if err := mw(ev); err != nil {
			var onErr []func(error)
			s.mu.Lock()
			if s.rare != nil {
				onErr = s.rare.onError
			}
			s.mu.Unlock()
			for _, f := range onErr {
				f(err)
			}
			return
		}
	}
	if !s.Connected() {
		return // a middleware disconnected it
	}
	for _, h := range anys {
		h.fn(ev)
	}
	for _, fn := range fns {
		fn(ev)
	}
}

func (s *Socket) onAck(p *packet) error {
	args, err := p.argsFrom(0)
	if err != nil {
		return err
	}
	s.mu.Lock()
	a := s.acks[p.id]
	delete(s.acks, p.id)
	s.mu.Unlock()
	if a == nil {
		return nil // late or unknown: ignored, as in Node
	}
	if a.timer != nil {
		a.timer.Stop()
	}
	a.fn(args, nil)
	return nil
}

// Event is an event received from a client.
type Event struct {
	// Name is the event's name (a number's JSON text if the client sent a
	// number).
	Name string
	// Args are its arguments, the client's JSON byte for byte.
	Args []Arg

	socket *Socket
	id     int64 // the acknowledgement id; -1 when none was asked for
	acked  atomic.Bool
	reply  func([]Arg) // where a server-side event's Ack goes
}

// Socket is the socket that received the event (nil for a server-side
// event from another node).
func (e *Event) Socket() *Socket { return e.socket }

// Arg returns argument i, or a JSON null when there is none.
func (e *Event) Arg(i int) Arg {
	if i < len(e.Args) {
		return e.Args[i]
	}
	return Arg{JSON: json.RawMessage("null")}
}

// WantsAck reports whether the client asked for an acknowledgement.
func (e *Event) WantsAck() bool { return e.id >= 0 }

// Ack acknowledges the event with args. It does nothing when the client
// asked for no acknowledgement or the event was acknowledged already. It
// may be called from any goroutine, later.
func (e *Event) Ack(args ...any) error {
	if e.id < 0 || !e.acked.CompareAndSwap(false, true) {
		return nil
	}
	a, _, err := encodeArgs(args)
	if err != nil {
		return err
	}
	if e.reply != nil {
		e.reply(a)
		return nil
	}
	return e.socket.send(encodeAckFor(e.socket.client.kind(), e.socket.nsp.name, e.id, a))
}
