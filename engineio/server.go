package engineio

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server. The zero value of each field means its
// default, which is Node's wherever Node has one.
type Options struct {
	// PingInterval is how long the server waits after a PONG (or the
	// handshake) before it sends the next PING. Defaults to 25s.
	PingInterval time.Duration
	// PingTimeout is how long a PING may go unanswered before the session
	// is closed with the reason "ping timeout". Defaults to 20s.
	PingTimeout time.Duration
	// UpgradeTimeout bounds the polling to WebSocket upgrade, from the
	// WebSocket's opening to the client's UPGRADE packet. Defaults to 10s.
	UpgradeTimeout time.Duration
	// MaxBufferSize bounds one polling body and one WebSocket message, in
	// bytes (Node's maxHttpBufferSize). Defaults to 1 MB.
	MaxBufferSize int64
	// AllowEIO3 accepts Engine.IO v3 clients (socket.io-client 2.x).
	AllowEIO3 bool
	// DisableUpgrades keeps polling sessions on polling.
	DisableUpgrades bool
	// MaxSessions bounds the sessions open at once; handshakes beyond it
	// are answered 503. 0 is no limit.
	MaxSessions int
	// MaxQueuedPackets and MaxQueuedBytes bound what waits to be sent to
	// one session: its queued packets and the control frames (pongs) that
	// wait on its WebSocket, each counted in bytes by what it costs the
	// server (its payload and 80 bytes of bookkeeping; see budget.go). A
	// session that lets its queue overflow (a client that stopped reading)
	// is told by SessionHandler.OnQueueOverflow. Default to 4096 packets and
	// 2 MiB.
	MaxQueuedPackets int
	MaxQueuedBytes   int64
	// QueueBudget bounds what the send queues of all sessions hold
	// together, in bytes: queued packets (payload and bookkeeping, each
	// queue counting a shared broadcast payload in full), control frames
	// and WebSocket writes in progress. When it is passed, the sessions
	// with the largest queues are cut off first, as slow consumers
	// (OnQueueOverflow), until the queues hold less than 7/8 of it.
	// Defaults to DefaultQueueBudget (128 MiB).
	QueueBudget int64
	// CloseTimeout bounds how long a closing session may take to deliver
	// its last packets (and, on WebSocket, its close frame). Defaults to 5s.
	CloseTimeout time.Duration
	// CompressionThreshold is the smallest polling response that is
	// gzip-compressed for clients that accept it (Node: 1024). Negative
	// turns compression off.
	CompressionThreshold int
	// PerMessageDeflate negotiates WebSocket compression (permessage-deflate,
	// RFC 7692) with the clients that offer it, as Node's perMessageDeflate
	// option; off by default, as in Node. The server always asks for no
	// context takeover on both sides: each message is compressed on its
	// own, a broadcast once for all its recipients, and a connection keeps
	// no compression state (see deflate.go). Messages sent with
	// Message.Uncompressed are not compressed.
	PerMessageDeflate bool
	// PerMessageDeflateThreshold is the smallest message that is compressed,
	// in bytes; smaller ones are sent as they are. 0 means 1024 (Node's
	// default); negative compresses every message.
	PerMessageDeflateThreshold int
	// AllowRequest, when set, is asked about every handshake; a non-nil
	// error refuses it with 403 and the error's text.
	AllowRequest func(r *http.Request) error
	// Transports are the transports clients may use, "polling" and
	// "websocket" (Node's transports option); a request for another is
	// refused with CodeUnknownTransport. Empty is both.
	Transports []string
	// Cookie, when set, is sent with every handshake's answer, with the new
	// session's id as its value (Node's cookie option); an empty Name is
	// "io". Nil sends none (Node's default).
	Cookie *http.Cookie
	// OnConnectionError is told about every refused request (Node's
	// "connection_error" event), on the request's goroutine, after the
	// answer was written.
	OnConnectionError func(*ConnectionError)
	// InitialHeaders may change the headers of a handshake's answer
	// (Node's "initial_headers" event), the polling response or the
	// WebSocket's 101; Headers, those of every answer that serves a
	// session (Node's "headers"), handshakes included, after
	// InitialHeaders. They run on the request's goroutine.
	InitialHeaders func(h http.Header, r *http.Request)
	Headers        func(h http.Header, r *http.Request)
	// KeepAlive, when set, serves the later polling requests of a
	// keep-alive connection on the epoll engine, without net/http (see
	// KeepAlive). Off by default.
	KeepAlive *KeepAlive
	// IOMode chooses how idle WebSocket connections wait for data:
	// IOModeEpoll (the default on Linux) or IOModeGoroutine.
	IOMode IOMode
	// Logger receives refusals (warn), closes (debug) and server errors.
	// Defaults to slog.Default().
	Logger *slog.Logger
}

// IOMode is how a Server waits for WebSocket input.
type IOMode int

const (
	// IOModeEpoll reads WebSocket connections when epoll reports them
	// readable: an idle connection costs no goroutine. Linux only; elsewhere
	// it means IOModeGoroutine.
	IOModeEpoll IOMode = iota
	// IOModeGoroutine parks one reader goroutine per WebSocket connection.
	IOModeGoroutine
)

func (o *Options) setDefaults() {
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 20 * time.Second
	}
	if o.UpgradeTimeout <= 0 {
		o.UpgradeTimeout = 10 * time.Second
	}
	if o.MaxBufferSize <= 0 {
		o.MaxBufferSize = 1_000_000
	}
	if o.MaxQueuedPackets <= 0 {
		o.MaxQueuedPackets = 4096
	}
	if o.MaxQueuedBytes <= 0 {
		o.MaxQueuedBytes = 2 << 20
	}
	if o.QueueBudget <= 0 {
		o.QueueBudget = DefaultQueueBudget
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 5 * time.Second
	}
	if o.CompressionThreshold == 0 {
		o.CompressionThreshold = 1024
	}
	if o.PerMessageDeflateThreshold == 0 {
		o.PerMessageDeflateThreshold = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if k := o.KeepAlive; k != nil {
		if k.HandBack == nil {
			o.KeepAlive = nil
		} else {
			c := *k
			c.setDefaults()
			o.KeepAlive = &c
		}
	}
}

// SessionHandler receives the events of one session. The server calls its
// methods one at a time, in order, never concurrently: OnMessage for each
// message in the order the client sent them, then OnClose once. They run
// on the session's own goroutines only: the one that read the data (a
// WebSocket reader, or the polling POST's request), or the session's
// executor goroutine, started when something is posted from elsewhere
// (Session.Do, Close, a timer) while no method runs. A method that blocks
// delays that session's later events, and no other session's; while it
// blocks, the session's reader queues at most 256 messages (256 KiB), then
// stops reading the connection until the handler has taken some.
type SessionHandler interface {
	// OnMessage receives one MESSAGE packet. data belongs to the handler.
	OnMessage(data []byte, binary bool)
	// OnQueueOverflow is called when the session's send queue overflowed:
	// the queued packets were dropped, and the session accepts no more
	// packets but those given to Close, which the handler must call.
	OnQueueOverflow()
	// OnClose is called once, when the session is closed, with the reason
	// (Node's: "transport close", "transport error", "ping timeout",
	// "parse error", "forced close", …) and the error behind it, if any.
	OnClose(reason string, err error)
}

// Server is an Engine.IO v4 server (and v3, with AllowEIO3) over HTTP
// long-polling and WebSocket. It is an http.Handler, to be mounted at the
// Engine.IO path (Node's default is /engine.io/, Socket.IO's /socket.io/).
//
// ServeHTTP may be called concurrently. Every session has its own lock; the
// server's own lock guards only the table of sessions.
type Server struct {
	opts    Options
	log     *slog.Logger
	connect func(*Session) SessionHandler
	io      ioEngine

	mu       sync.Mutex
	sessions map[string]*Session
	beats    heartbeats // the sessions' heartbeat timers
	closed   bool
	gone     chan struct{} // closed once the server is closed and has no session
	count    atomic.Int64  // sessions open or reserved by a handshake
	// shutting is set by CloseSessions before any session is closed: from
	// then on no session's messages reach its handler (see Session.heard),
	// so no new broadcast competes with the closes for the locks above.
	shutting atomic.Bool

	// what all send queues hold (Options.QueueBudget): touched by every
	// Send and flush, so on a cache line of its own
	_           [64]byte
	queuedBytes atomic.Int64
	_           [56]byte
	shedding    atomic.Bool // a shedding pass is running

	stats Stats

	ka pollConns // the keep-alive connections served on the epoll engine

	// the compressed forms of recent messages, with PerMessageDeflate
	deflateCache *deflateCache

	// the OPEN packet after the session id, without and with the
	// WebSocket upgrade offered (openPacket)
	openTails [2][]byte
}

// NewServer returns a server that calls connect for each new session, on
// the handshake's goroutine, before the handshake is answered; connect
// returns the session's handler. What connect sends follows the OPEN packet.
func NewServer(opts Options, connect func(*Session) SessionHandler) *Server {
	opts.setDefaults()
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		connect:  connect,
		sessions: make(map[string]*Session),
		gone:     make(chan struct{}),
	}
	s.io = newIOEngine(opts.IOMode)
	s.openTails = [2][]byte{openTail(false, s.opts), openTail(true, s.opts)}
	if opts.PerMessageDeflate {
		s.deflateCache = new(deflateCache)
	}
	return s
}

// Options returns the server's options, with defaults filled in.
func (s *Server) Options() Options { return s.opts }

// Engine.IO error codes, as in Node's engine.io (Server.errors).
const (
	codeUnknownTransport    = 0
	codeUnknownSID          = 1
	codeBadHandshakeMethod  = 2
	codeBadRequest          = 3
	codeForbidden           = 4
	codeUnsupportedProtocol = 5
)

var errorMessages = [...]string{
	codeUnknownTransport:    "Transport unknown",
	codeUnknownSID:          "Session ID unknown",
	codeBadHandshakeMethod:  "Bad handshake method",
	codeBadRequest:          "Bad request",
	codeForbidden:           "Forbidden",
	codeUnsupportedProtocol: "Unsupported protocol version",
}

// WriteError answers with the Engine.IO error body {"code":…,"message":…}.
func WriteError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	_, _ = w.Write(append(b, '\n'))
}

// refuse answers a request with an Engine.IO error and logs why: at warn
// for what a legitimate client never does, at debug for what happens
// routinely (a poll for a session that just ended).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, level slog.Level, sid, transport string, status, code int, message, reason string) {
	s.stats.refused(status, code)
	s.log.Log(r.Context(), level, "refused request", "sid", sid, "transport", transport, "remote", r.RemoteAddr,
		"method", r.Method, "status", status, "reason", reason)
	WriteError(w, status, code, message)
	s.connectionError(r, status, code, message, reason)
}

func (s *Server) refuseCode(w http.ResponseWriter, r *http.Request, level slog.Level, sid, transport string, status, code int, reason string) {
	s.refuse(w, r, level, sid, transport, status, code, errorMessages[code], reason)
}

// ServeHTTP serves one Engine.IO request: a handshake, a poll, a polling
// POST, or a WebSocket (new, or an upgrade of a polling session).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := parseQuery(r.URL.RawQuery)
	transport, sid := q.transport, q.sid
	isWS := isWebSocketUpgrade(r)
	if transport != "polling" && transport != "websocket" || !s.allowsTransport(transport) {
		s.refuseCode(w, r, slog.LevelDebug, sid, transport, http.StatusBadRequest, codeUnknownTransport,
			fmt.Sprintf("unknown transport %q", transport))
		return
	}
	if o := headerGet(r.Header, "Origin"); o != "" && !validHeaderValue(o) {
		s.refuseCode(w, r, slog.LevelWarn, sid, transport, http.StatusBadRequest, codeBadRequest, "invalid Origin header")
		return
	}
	if sid == "" {
		s.handshake(w, r, q, transport, isWS)
		return
	}
	if !validID(sid) {
		s.refuseCode(w, r, slog.LevelWarn, sid, transport, http.StatusBadRequest, codeBadRequest, "malformed session id")
		return
	}
	sess := s.lookup(sid)
	if sess == nil {
		s.refuseCode(w, r, slog.LevelDebug, sid, transport, http.StatusBadRequest, codeUnknownSID, "unknown session")
		return
	}
	if protocolOf(q.eio) != int(sess.protocol) {
		s.refuseCode(w, r, slog.LevelWarn, sid, transport, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("protocol EIO=%s for a v%d session", q.eio, sess.protocol))
		return
	}
	s.setHeaders(w.Header(), r, "")
	switch {
	case transport == "websocket" && isWS:
		sess.serveUpgrade(w, r)
	case transport == "websocket":
		s.refuseCode(w, r, slog.LevelWarn, sid, transport, http.StatusBadRequest, codeBadRequest, "websocket transport without an upgrade")
	case r.Method == http.MethodGet:
		sess.servePoll(w, r)
	case r.Method == http.MethodPost:
		sess.servePost(w, r)
	case r.Method == http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
	default:
		s.refuseCode(w, r, slog.LevelWarn, sid, transport, http.StatusBadRequest, codeBadRequest,
			fmt.Sprintf("method %s on a polling session", r.Method))
	}
}

// protocolOf is the Engine.IO revision a request asks for: 4, or 3.
func protocolOf(eio string) int {
	if eio == "4" {
		return 4
	}
	return 3
}

// handshake opens a session, over polling or WebSocket.
func (s *Server) handshake(w http.ResponseWriter, r *http.Request, q query, transport string, isWS bool) {
	eio := q.eio
	if eio != "4" && (eio != "3" || !s.opts.AllowEIO3) {
		s.refuseCode(w, r, slog.LevelWarn, "", transport, http.StatusBadRequest, codeUnsupportedProtocol,
			fmt.Sprintf("unsupported protocol version EIO=%q", eio))
		return
	}
	if r.Method != http.MethodGet {
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.refuseCode(w, r, slog.LevelWarn, "", transport, http.StatusBadRequest, codeBadHandshakeMethod,
			fmt.Sprintf("handshake with method %s", r.Method))
		return
	}
	if transport == "websocket" && !isWS {
		s.refuseCode(w, r, slog.LevelWarn, "", transport, http.StatusBadRequest, codeBadRequest, "websocket handshake without an upgrade")
		return
	}
	var jsonp []byte
	if transport == "polling" && q.hasJ {
		var ok bool
		if jsonp, ok = jsonpHead(q.j); !ok {
			s.refuseCode(w, r, slog.LevelWarn, "", transport, http.StatusBadRequest, codeBadRequest,
				fmt.Sprintf("JSONP index j=%.20q is not 1 to %d digits", q.j, maxJSONPIndexDigits))
			return
		}
	}
	if s.opts.AllowRequest != nil {
		if err := s.opts.AllowRequest(r); err != nil {
			s.refuse(w, r, slog.LevelWarn, "", transport, http.StatusForbidden, codeForbidden, err.Error(), err.Error())
			return
		}
	}
	if !s.reserve() {
		s.refuse(w, r, slog.LevelWarn, "", transport, http.StatusServiceUnavailable, codeBadRequest,
			"Too many connections", fmt.Sprintf("%d sessions open, the limit", s.opts.MaxSessions))
		return
	}
	protocol := 4
	if eio == "3" {
		protocol = 3
	}
	sess := newSession(s, newID(), protocol, r)
	s.setHeaders(w.Header(), r, sess.id)
	if transport == "websocket" {
		c, err := s.acceptWebSocket(w, r, sess)
		if err != nil {
			s.release()
			return // acceptWebSocket answered
		}
		sess.open(c)
		return
	}
	sess.b64 = q.b64 != ""
	sess.pl = &pollState{jsonp: jsonp}
	sess.open(nil)
	sess.servePoll(w, r)
}

// reserve takes room for one more session, if the limit allows.
func (s *Server) reserve() bool {
	n := s.count.Add(1)
	if s.opts.MaxSessions > 0 && n > int64(s.opts.MaxSessions) {
		s.count.Add(-1)
		return false
	}
	return true
}

func (s *Server) release() { s.count.Add(-1) }

// register adds an opened session to the table; it reports false when the
// server is closed.
func (s *Server) register(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.sessions[sess.id] = sess
	return true
}

// unregister removes a session whose transport is done; its room is free.
func (s *Server) unregister(sess *Session) {
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.checkGoneLocked()
	s.mu.Unlock()
	s.release()
}

func (s *Server) lookup(sid string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sid]
}

// Session returns the open session with this id, or nil.
func (s *Server) Session(sid string) *Session {
	sess := s.lookup(sid)
	if sess == nil || sess.Closed() {
		return nil
	}
	return sess
}

// Reserved is the number of sessions Options.MaxSessions counts: open,
// closing, or being opened by a handshake under way. A handshake beyond
// MaxSessions is refused (503) exactly when Reserved has reached it.
func (s *Server) Reserved() int { return int(s.count.Load()) }

// Len is the number of sessions open, or closing and still delivering
// their last packets.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Close closes every session with the reason "forced close" (their last
// packets are delivered within CloseTimeout) and refuses new ones. It
// returns once every session was told (see CloseSessions); Len tells when
// they are gone. Later calls do nothing more.
func (s *Server) Close() { s.CloseSessions("forced close") }

// closeWorkers bounds the goroutines CloseSessions closes sessions on.
const closeWorkers = 256

// CloseSessions is Close with the reason the sessions' handlers are given
// (Socket.IO's "server shutting down"). The sessions are closed in
// parallel, on up to closeWorkers goroutines of its own, so that every
// client is told (a WebSocket close frame after its queued packets, a
// polling CLOSE packet) at once, however many there are and however busy
// the server is: one at a time, behind the broadcasts of a loaded server,
// closes took seconds. Session.Close only posts the handler's OnClose to
// the session's executor; whichever goroutine that runs on, it is not one
// that holds a lock of the server's. From the moment CloseSessions is
// called, what clients send is dropped (as it is for a closing session, in
// Node too): the messages being handled end the load, and the sockets'
// leaves do not wait behind new broadcasts, one broadcast per leave, as
// they did.
func (s *Server) CloseSessions(reason string) {
	s.shutting.Store(true)
	s.mu.Lock()
	s.closed = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.checkGoneLocked()
	s.mu.Unlock()
	workers := min(len(all), closeWorkers)
	if workers <= 1 {
		for _, sess := range all {
			sess.Close(reason)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(all) {
					return
				}
				all[i].Close(reason)
			}
		})
	}
	wg.Wait()
}

// checkGoneLocked closes gone when the server is closed and its last
// session is gone. s.mu is held.
func (s *Server) checkGoneLocked() {
	if s.closed && len(s.sessions) == 0 {
		select {
		case <-s.gone:
		default:
			close(s.gone)
			go s.closePollConns()
		}
	}
}

// Wait waits until the server is closed (Close, CloseSessions) and every
// session is gone (Len is 0): its last packets delivered, or its
// CloseTimeout passed. The handlers' OnClose may still be running. It
// returns ctx's error if ctx ends first.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-s.gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns counters of what the server did since it started.
func (s *Server) Stats() StatsSnapshot {
	st := s.stats.snapshot()
	st.KeepAliveConns = int64(s.PollConns())
	return st
}

// Queues calls fn with the send queue of every open session: the packets
// and bytes waiting to be sent. It takes each session's lock in turn, so it
// costs a little per session: for scrapes, not for hot paths.
func (s *Server) Queues(fn func(packets int, bytes int64)) {
	s.mu.Lock()
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		if p, b := sess.Queued(); !sess.Closed() {
			fn(p, b)
		}
	}
}

// newID returns a session id as Node's base64id: 15 random bytes, 20
// characters of URL-safe base64.
func newID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return base64.URLEncoding.EncodeToString(b[:])
}

// NewID returns a random id in the format of Engine.IO session ids, for the
// layers above (Socket.IO socket ids).
func NewID() string { return newID() }

// validID reports whether sid could be a session id: a short run of
// URL-safe base64 characters.
func validID(sid string) bool {
	if len(sid) > 64 {
		return false
	}
	for i := 0; i < len(sid); i++ {
		c := sid[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v has only characters HTTP allows in a
// header value (Node's checkInvalidHeaderChar).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// isWebSocketUpgrade reports whether r asks for a WebSocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// headerHasToken reports whether a comma-separated header has token. name
// is in canonical form (see headerGet).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// headerGet is h.Get(name) for a name already in canonical form, as the
// literals of the engine's hot path are: net/http stores the headers of a
// request under their canonical names, and Get canonicalizes its argument
// first, which costs more than the lookup itself.
func headerGet(h http.Header, name string) string {
	if v := h[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// ErrClosed is returned by Send on a session that is closed or closing.
var ErrClosed = errors.New("engineio: session closed")

// ErrQueueFull is returned by Send when the session's send queue is full;
// the session's handler has been told (OnQueueOverflow).
var ErrQueueFull = errors.New("engineio: send queue full")
