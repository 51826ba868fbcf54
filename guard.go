package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zishang520/socket.io/parsers/engine/v3/packet"
	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/engine/v3"
	"github.com/zishang520/socket.io/servers/engine/v3/transports"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// Engine.IO error codes of the {"code":…,"message":…} body (engine.io-protocol).
const (
	eioCodeBadRequest          = 3
	eioCodeUnsupportedProtocol = 5
)

// guard stands in front of an Engine.IO handler and refuses, per request,
// what the engine would accept or mishandle:
//
//   - a handshake whose EIO is not a version we speak: 400 {"code":5}, before
//     any WebSocket upgrade;
//   - a handshake beyond maxConnections open sessions: 503 (upgrades of
//     existing sessions are not counted again);
//   - a polling POST over maxHttpBufferSize, announced by Content-Length or
//     discovered while reading a chunked body: 413, the session is closed,
//     and at most maxHttpBufferSize+1 bytes are ever read;
//   - a polling POST that does not decode as an Engine.IO payload (the engine
//     answers "ok" and drops it): 400, the session is closed, as in Node;
//   - a polling POST whose packets the Socket.IO layer refuses (the engine
//     answers 429 with no body): 400 with the JSON body.
//
// Refusals are answered with the Engine.IO JSON error body and logged once,
// with the keys sid, transport, remote and reason. The guard also logs every
// request the engine refuses (debug), every packet the Socket.IO layer
// refuses (warn), and the end of every session with its reason (debug).
//
// It also works around three races and leaks of the library (v3.0.6): PONGs
// that arrive before the pong deadline is armed (redeliverPongs), closed
// polling transports kept for 30 s (releasePolling), and events that arrive
// between the CONNECT answer and the join being recorded (holdUntilJoined).
//
// ServeHTTP is safe for concurrent use; engine events arrive on the
// library's goroutines.
type guard struct {
	next      http.Handler
	eio       engine.BaseServer
	log       *slog.Logger
	maxBody   int64
	maxConns  uint64
	allowEIO3 bool
	socketIO  bool          // a Socket.IO server decodes the sessions' messages
	strict    *strictParser // the Socket.IO server's parser, when it is ours; may be nil
	joins     sync.Map      // sid -> *joinWaits, for Socket.IO sessions

	mu   sync.Mutex
	open uint64 // sessions admitted and not closed yet
}

// newGuard wraps next, the handler of the Engine.IO server eio.
func newGuard(next http.Handler, eio engine.BaseServer, cfg Config, log *slog.Logger) *guard {
	g := &guard{
		next:      next,
		eio:       eio,
		log:       log,
		maxBody:   cfg.MaxHTTPBufferSize,
		maxConns:  uint64(cfg.MaxConnections),
		allowEIO3: cfg.AllowEIO3,
	}
	return g.watchEngine()
}

// guardSocketIO wraps the Engine.IO handler of a Socket.IO server. When the
// server was built with a strictParser, refused packets are logged with the
// parser's reason.
func guardSocketIO(io *socket.Server, cfg Config, log *slog.Logger) http.Handler {
	g := &guard{
		next:      io.ServeHandler(nil),
		eio:       io.Engine(),
		log:       log,
		maxBody:   cfg.MaxHTTPBufferSize,
		maxConns:  uint64(cfg.MaxConnections),
		allowEIO3: cfg.AllowEIO3,
		socketIO:  true,
	}
	if p, ok := io.Opts().Parser().(*strictParser); ok {
		g.strict = p
	}
	// Namespaces created later announce themselves on the main one.
	joined := func(args ...any) {
		if s, ok := args[0].(*socket.Socket); ok {
			if w, ok := g.joins.Load(s.Conn().Id()); ok {
				w.(*joinWaits).done(s.Nsp().Name())
			}
		}
	}
	_ = io.Sockets().On("connection", joined)
	_ = io.Sockets().On("new_namespace", func(args ...any) {
		if nsp, ok := args[0].(socket.Namespace); ok {
			_ = nsp.On("connection", joined)
		}
	})
	return g.watchEngine()
}

func (g *guard) watchEngine() *guard {
	_ = g.eio.On("connection", g.onSession)
	_ = g.eio.On("connection_error", g.onEngineRefusal)
	return g
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sid := q.Get("sid")
	if sid == "" {
		g.serveHandshake(w, r, q)
		return
	}
	if r.Method == http.MethodPost && q.Get("transport") == transports.POLLING {
		if !g.admitPollingBody(w, r, sid) {
			return
		}
		w = &postWriter{ResponseWriter: w}
	}
	g.next.ServeHTTP(w, r)
}

// postWriter answers a polling POST whose packets made the session close
// (the engine answers such a POST 429 with no body) with the Engine.IO error
// 400 {"code":3,"message":"Bad request"}.
type postWriter struct {
	http.ResponseWriter
	replaced bool
}

func (w *postWriter) WriteHeader(status int) {
	if status != http.StatusTooManyRequests {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.replaced = true
	w.Header().Del("Content-Length")
	writeJSONError(w.ResponseWriter, http.StatusBadRequest, eioCodeBadRequest, "Bad request")
}

func (w *postWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *postWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// serveHandshake serves a request that opens a session, over polling or
// WebSocket, if the protocol version is known and there is room.
func (g *guard) serveHandshake(w http.ResponseWriter, r *http.Request, q url.Values) {
	transport := q.Get("transport")
	if eio := q.Get("EIO"); eio != "4" && (eio != "3" || !g.allowEIO3) {
		g.refuse(w, r, "", transport, http.StatusBadRequest, eioCodeUnsupportedProtocol,
			"Unsupported protocol version", fmt.Sprintf("unsupported protocol version EIO=%q", eio))
		return
	}
	a := g.admit()
	if a == nil {
		g.refuse(w, r, "", transport, http.StatusServiceUnavailable, eioCodeBadRequest,
			"Too many connections", fmt.Sprintf("%d sessions open, the limit", g.maxConns))
		return
	}
	defer a.handshakeDone()
	g.next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), admissionKey{}, a)))
}

// admission is the room reserved for the session a handshake opens. The
// handshake's request carries it (as a context value) to onSession, which
// ties it to the session; a handshake that opens no session gives it back.
type admission struct {
	g       *guard
	session atomic.Bool // a session was opened with it
	freed   atomic.Bool
}

type admissionKey struct{}

// admit reserves room for one more session, or returns nil when there is
// none. Sessions are counted from the reservation to their close, so
// concurrent handshakes cannot overshoot the limit.
func (g *guard) admit() *admission {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open >= g.maxConns {
		return nil
	}
	g.open++
	return &admission{g: g}
}

func (a *admission) free() {
	if a.freed.CompareAndSwap(false, true) {
		a.g.mu.Lock()
		a.g.open--
		a.g.mu.Unlock()
	}
}

// handshakeDone runs when the engine has served the handshake; the engine
// opens the session, if any, before that.
func (a *admission) handshakeDone() {
	if !a.session.Load() {
		a.free()
	}
}

// admitPollingBody reads the body of a polling POST for session sid, at most
// maxHttpBufferSize bytes, and checks that it decodes. It answers and closes
// the session when not, and reports whether the engine may have the request.
func (g *guard) admitPollingBody(w http.ResponseWriter, r *http.Request, sid string) bool {
	sock, ok := g.eio.Clients().Load(sid)
	if !ok || sock.Transport() == nil || sock.Transport().Name() != transports.POLLING {
		return true // the engine answers unknown sessions and transport mismatches
	}
	const transport = transports.POLLING
	if r.ContentLength > g.maxBody {
		sock.Close(true)
		g.refuse(w, r, sid, transport, http.StatusRequestEntityTooLarge, eioCodeBadRequest,
			"Payload too large", fmt.Sprintf("body of %d bytes, over maxHttpBufferSize %d", r.ContentLength, g.maxBody))
		return false
	}
	// A body that trickles in holds the session's POST and a goroutine: it
	// gets as long as the heartbeat gives a silent client.
	timeout := g.eio.Opts().PingInterval() + g.eio.Opts().PingTimeout()
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		sock.Close(true)
		var tooBig *http.MaxBytesError
		var ne net.Error
		if errors.As(err, &tooBig) {
			g.refuse(w, r, sid, transport, http.StatusRequestEntityTooLarge, eioCodeBadRequest,
				"Payload too large", fmt.Sprintf("body over maxHttpBufferSize %d", g.maxBody))
		} else if errors.As(err, &ne) && ne.Timeout() {
			g.refuse(w, r, sid, transport, http.StatusBadRequest, eioCodeBadRequest,
				"Bad request", fmt.Sprintf("body not received within %v", timeout))
		} else {
			g.log.Debug("refused request", "sid", sid, "transport", transport, "remote", r.RemoteAddr,
				"reason", "reading the body: "+err.Error())
			writeJSONError(w, http.StatusBadRequest, eioCodeBadRequest, "Bad request")
		}
		return false
	}
	var payload types.BufferInterface
	if r.Header.Get("Content-Type") == "application/octet-stream" {
		if sock.Protocol() == 4 {
			sock.Close(true)
			g.refuse(w, r, sid, transport, http.StatusBadRequest, eioCodeBadRequest,
				"Bad request", "binary body, which Engine.IO v4 does not use")
			return false
		}
		payload = types.NewBytesBuffer(body)
	} else {
		payload = types.NewStringBuffer(body)
	}
	if _, err := sock.Transport().Parser().DecodePayload(payload); err != nil {
		sock.Close(true)
		g.refuse(w, r, sid, transport, http.StatusBadRequest, eioCodeBadRequest,
			"Bad request", "invalid Engine.IO payload: "+err.Error())
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return true
}

// refuse answers with the Engine.IO error body and logs the refusal.
func (g *guard) refuse(w http.ResponseWriter, r *http.Request, sid, transport string, status, code int, message, reason string) {
	g.log.Warn("refused request", "sid", sid, "transport", transport, "remote", r.RemoteAddr,
		"status", status, "reason", reason)
	writeJSONError(w, status, code, message)
}

// onEngineRefusal logs a request the engine itself refused (unknown sid or
// transport, bad method…). These are routine after a restart: debug.
func (g *guard) onEngineRefusal(args ...any) {
	e, ok := args[0].(*types.ErrorMessage)
	if !ok || e == nil || e.CodeMessage == nil {
		return
	}
	sid, transport, remote := "", "", ""
	if e.Req != nil {
		sid, transport = e.Req.Query().Peek("sid"), e.Req.Query().Peek("transport")
		remote = e.Req.Request().RemoteAddr
	}
	reason := e.CodeMessage.Message
	if len(e.Context) > 0 {
		reason += fmt.Sprintf(" %v", e.Context)
	}
	g.log.Debug("refused request", "sid", sid, "transport", transport, "remote", remote,
		"code", e.CodeMessage.Code, "reason", reason)
}

// onSession watches one Engine.IO session: the packets the Socket.IO layer
// refuses (it closes the session when it does) and the session's end.
func (g *guard) onSession(args ...any) {
	sock, ok := args[0].(engine.Socket)
	if !ok {
		return
	}
	sid, remote := sock.Id(), sock.RemoteAddress()
	if req := sock.Request(); req != nil {
		if a, ok := req.Request().Context().Value(admissionKey{}).(*admission); ok {
			a.session.Store(true)
			_ = sock.Once("close", func(...any) { a.free() })
			if sock.ReadyState() == "closed" { // closed before we listened
				a.free()
			}
		}
	}
	if sock.Protocol() == 4 {
		g.redeliverPongs(sock)
	}
	if g.socketIO && sock.Protocol() == 4 {
		g.holdUntilJoined(sock)
	}
	if g.socketIO {
		// Runs after the Socket.IO client's own "data" listener (registered
		// when Socket.IO bound the engine, before us), in the same call: a
		// session no longer open means that the packet was refused.
		_ = sock.On("data", func(args ...any) {
			if sock.ReadyState() == "open" || len(args) == 0 {
				return
			}
			reason := "invalid Socket.IO packet or packet order"
			if g.strict != nil {
				if err, ok := g.strict.refused.LoadAndDelete(args[0]); ok {
					reason = err.(error).Error()
				}
			}
			g.log.Warn("refused packet", "sid", sid, "transport", sessionTransport(sock), "remote", remote,
				"reason", reason)
		})
	}
	_ = sock.Once("close", func(args ...any) {
		reason := ""
		if len(args) > 0 {
			reason = fmt.Sprint(args[0])
		}
		if len(args) > 1 && args[1] != nil {
			// The engine's transport errors end in " (%!w(<nil>))" when they
			// have no cause.
			reason += ": " + strings.TrimSuffix(fmt.Sprint(args[1]), " (%!w(<nil>))")
		}
		g.log.Debug("session closed", "sid", sid, "transport", sessionTransport(sock), "remote", remote,
			"reason", reason)
		if len(args) > 0 && args[0] == "ping timeout" {
			releasePolling(sock)
		}
	})
}

// releasePolling frees the polling transport of a session that timed out.
// The engine keeps a closed polling transport, with its timer goroutine and
// the whole session, for 30 s (closeTimeout) in case the client polls once
// more for the CLOSE packet; a client that stopped answering pings will not,
// and a flood of half-open sessions would pile up. Sending on the closing
// transport runs its pending close at once.
func releasePolling(sock engine.Socket) {
	if t := sock.Transport(); t != nil && t.Name() == transports.POLLING && t.ReadyState() == "closing" && !t.Writable() {
		t.Send([]*packet.Packet{{Type: packet.NOOP}})
	}
}

// joinWait bounds how long a packet for a namespace waits for the Socket.IO
// layer to finish joining it (see holdUntilJoined); normally microseconds.
const joinWait = time.Second

// joinWaits holds, for one session, the namespaces whose CONNECT the
// Socket.IO layer is still processing.
type joinWaits struct {
	mu      sync.Mutex
	pending map[string]chan struct{}
}

func (w *joinWaits) start(nsp string) {
	w.mu.Lock()
	if w.pending[nsp] == nil {
		w.pending[nsp] = make(chan struct{})
	}
	w.mu.Unlock()
}

func (w *joinWaits) any() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending) > 0
}

func (w *joinWaits) done(nsp string) {
	w.mu.Lock()
	if ch := w.pending[nsp]; ch != nil {
		close(ch)
		delete(w.pending, nsp)
	}
	w.mu.Unlock()
}

func (w *joinWaits) doneAll() {
	w.mu.Lock()
	for nsp, ch := range w.pending {
		close(ch)
		delete(w.pending, nsp)
	}
	w.mu.Unlock()
}

func (w *joinWaits) wait(nsp string) {
	w.mu.Lock()
	ch := w.pending[nsp]
	w.mu.Unlock()
	if ch == nil {
		return
	}
	t := time.NewTimer(joinWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

// holdUntilJoined works around a race in the Socket.IO server (v3.0.6): it
// sends the CONNECT answer before it records the namespace as joined, on
// another goroutine, so a client that emits as soon as it is connected (as
// socket.io-client does with buffered emits) can have its first event taken
// for an event outside any namespace, and be disconnected. A packet for a
// namespace whose CONNECT is still being processed therefore waits, on this
// session's reader, until the join is recorded (the namespace's "connection"
// event) or refused (an outgoing CONNECT_ERROR), at most joinWait. The
// "packet" listener runs before the engine hands the packet to Socket.IO.
func (g *guard) holdUntilJoined(sock engine.Socket) {
	w := &joinWaits{pending: map[string]chan struct{}{}}
	g.joins.Store(sock.Id(), w)
	_ = sock.Once("close", func(...any) {
		g.joins.Delete(sock.Id())
		w.doneAll()
	})
	_ = sock.On("packet", func(args ...any) {
		// Only CONNECTs, and packets while a join is under way, are read.
		typ, nsp, ok := sioHeader(args, func(typ byte) bool { return typ == '0' || w.any() })
		switch {
		case !ok:
		case typ == '0': // CONNECT
			w.start(nsp)
		default:
			w.wait(nsp)
		}
	})
	_ = sock.On("packetCreate", func(args ...any) {
		isConnectError := func(typ byte) bool { return typ == '4' } // no join coming
		if _, nsp, ok := sioHeader(args, isConnectError); ok {
			w.done(nsp)
		}
	})
}

// sioHeader reads the type and namespace of the Socket.IO packet carried by
// an Engine.IO MESSAGE packet, without consuming it, if want(type).
func sioHeader(args []any, want func(typ byte) bool) (typ byte, nsp string, ok bool) {
	p, isPacket := args[0].(*packet.Packet)
	if !isPacket || p == nil || p.Type != packet.MESSAGE {
		return 0, "", false
	}
	sb, isText := p.Data.(*types.StringBuffer)
	if !isText {
		return 0, "", false // an attachment: its packet already waited
	}
	head := sb.Bytes() // not consumed, not copied
	if len(head) == 0 || !want(head[0]) {
		return 0, "", false
	}
	// Type, attachment count and namespace fit in the first bytes.
	const maxHeader = 1 + 21 + parser.DefaultMaxNamespaceLength + 1
	typ, rest := head[0], string(head[1:min(len(head), maxHeader)])
	if typ == '5' || typ == '6' { // BINARY_EVENT, BINARY_ACK: attachment count first
		if dash := strings.IndexByte(rest, '-'); dash >= 0 {
			rest = rest[dash+1:]
		}
	}
	nsp = "/"
	if strings.HasPrefix(rest, "/") {
		nsp = rest
		if comma := strings.IndexByte(rest, ','); comma >= 0 {
			nsp = rest[:comma]
		}
	}
	return typ, nsp, true
}

// redeliverPongs works around a race in the engine's heartbeat (v3.0.6):
// the timer that sends a PING arms the pong deadline only after the PING has
// been written, so a PONG that comes back before that (loopback, or the timer
// goroutine descheduled under load) clears nothing, and the session dies of
// "ping timeout" although the client answered. Each PONG is therefore handed
// to the session a second time, half a pingTimeout later, which clears a
// deadline armed late. The cost: the next PING comes that much later, still
// well within the client's pingInterval+pingTimeout.
func (g *guard) redeliverPongs(sock engine.Socket) {
	opts := g.eio.Opts()
	delay := min(opts.PingTimeout(), opts.PingInterval()) / 2
	again := &packet.Packet{Type: packet.PONG} // ours, not redelivered again
	_ = sock.On("packet", func(args ...any) {
		if p, ok := args[0].(*packet.Packet); !ok || p.Type != packet.PONG || p == again {
			return
		}
		time.AfterFunc(delay, func() {
			if sock.ReadyState() != "open" {
				return
			}
			if t := sock.Transport(); t != nil {
				t.Emit("packet", again)
			}
		})
	})
}

func sessionTransport(sock engine.Socket) string {
	if t := sock.Transport(); t != nil {
		return t.Name()
	}
	return ""
}

// strictParser is the Socket.IO parser with the checks Node's parser makes
// and Go's does not:
//
//   - a placeholder ({"_placeholder":true,…}) must have an integer num that
//     indexes one of the packet's attachments, as in Node (Go's parser keeps
//     {"_placeholder":true,"num":"x"} as a plain object);
//   - the attachments of one packet together hold at most maxAttachmentBytes,
//     so a client cannot park 10 × maxHttpBufferSize bytes by announcing
//     attachments and never sending the last one.
//
// It remembers why it refused a packet for the guard's log line.
type strictParser struct {
	parser.Parser
	maxAttachmentBytes int64
	refused            sync.Map // packet data (pointer) -> error, taken by guard.onSession
}

var _ parser.Parser = (*strictParser)(nil)

// newStrictParser wraps inner (parser.NewParser() or one of ours).
func newStrictParser(inner parser.Parser, maxAttachmentBytes int64) *strictParser {
	return &strictParser{Parser: inner, maxAttachmentBytes: maxAttachmentBytes}
}

func (p *strictParser) NewDecoder() parser.Decoder {
	return &strictDecoder{Decoder: p.Parser.NewDecoder(), p: p}
}

// strictDecoder decodes the packets of one connection, in arrival order.
type strictDecoder struct {
	parser.Decoder
	p *strictParser

	mu       sync.Mutex
	expect   uint64 // attachments still expected by the binary packet being reconstructed
	received int64  // bytes of attachments received for it
}

var errIllegalAttachments = errors.New("illegal attachments")

func (d *strictDecoder) Add(data any) error {
	err := d.check(data)
	if err == nil {
		err = d.Decoder.Add(data)
	}
	if err != nil {
		d.p.refused.Store(data, err)
	}
	return err
}

func (d *strictDecoder) check(data any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var text string
	switch v := data.(type) {
	case string:
		text = v
	case *types.StringBuffer:
		if b := v.Bytes(); len(b) > 0 && (b[0] == '5' || b[0] == '6') {
			text = string(b) // not consumed; copied for binary packet headers only
		}
	case types.BufferInterface:
		if d.expect == 0 {
			return nil // the parser refuses an unexpected attachment
		}
		d.expect--
		d.received += int64(v.Len())
		if d.received > d.p.maxAttachmentBytes {
			return fmt.Errorf("attachments over %d bytes", d.p.maxAttachmentBytes)
		}
		return nil
	default:
		return nil
	}
	if d.expect > 0 || len(text) == 0 || (text[0] != '5' && text[0] != '6') {
		return nil
	}
	n, err := checkPlaceholders(text)
	if err != nil {
		return err
	}
	d.expect, d.received = n, 0
	return nil
}

// checkPlaceholders checks the placeholders of a BINARY_EVENT or BINARY_ACK
// header such as 51-/nsp,12["ev",{"_placeholder":true,"num":0}] against its
// attachment count, which it returns. A header the parser will refuse anyway
// passes, with a count of 0.
func checkPlaceholders(text string) (uint64, error) {
	rest := text[1:]
	dash := strings.IndexByte(rest, '-')
	if dash < 1 {
		return 0, nil
	}
	n, err := strconv.ParseUint(rest[:dash], 10, 64)
	if err != nil || n > parser.DefaultMaxAttachments {
		return 0, nil
	}
	rest = rest[dash+1:]
	if strings.HasPrefix(rest, "/") {
		comma := strings.IndexByte(rest, ',')
		if comma < 0 {
			return 0, nil
		}
		rest = rest[comma+1:]
	}
	rest = strings.TrimLeft(rest, "0123456789")
	dec := json.NewDecoder(strings.NewReader(rest))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return 0, nil
	}
	if err := walkPlaceholders(v, n); err != nil {
		return 0, err
	}
	return n, nil
}

func walkPlaceholders(v any, attachments uint64) error {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if err := walkPlaceholders(e, attachments); err != nil {
				return err
			}
		}
	case map[string]any:
		if flag, ok := x["_placeholder"].(bool); ok && flag {
			num, ok := x["num"].(json.Number)
			if !ok {
				return fmt.Errorf("%w: placeholder num %v", errIllegalAttachments, x["num"])
			}
			i, err := num.Float64()
			if err != nil || i < 0 || i != math.Trunc(i) || i >= float64(attachments) {
				return fmt.Errorf("%w: placeholder num %s with %d attachments", errIllegalAttachments, num, attachments)
			}
			return nil
		}
		for _, e := range x {
			if err := walkPlaceholders(e, attachments); err != nil {
				return err
			}
		}
	}
	return nil
}
