package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
//   - a handshake whose EIO is not a version we speak: 400 {"code":5};
//   - a handshake beyond maxConnections open sessions: 503 (upgrades of
//     existing sessions are not counted again);
//   - a polling POST over maxHttpBufferSize, announced by Content-Length or
//     discovered while reading a chunked body: 413, the session is closed,
//     and at most maxHttpBufferSize+1 bytes are ever read;
//   - a polling POST that does not decode as an Engine.IO payload (the engine
//     answers "ok" and drops it): 400, the session is closed, as in Node.
//
// Refusals are answered with the Engine.IO JSON error body and logged once,
// with the keys sid, transport, remote and reason. The guard also logs every
// request the engine refuses (debug), every packet the Socket.IO layer
// refuses (warn), and the end of every session with its reason (debug).
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

	mu      sync.Mutex
	pending uint64 // handshakes admitted and still being served
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
	if r.Method == http.MethodPost && q.Get("transport") == transports.POLLING && !g.admitPollingBody(w, r, sid) {
		return
	}
	g.next.ServeHTTP(w, r)
}

// serveHandshake serves a request that opens a session, over polling or
// WebSocket, if the protocol version is known and there is room.
func (g *guard) serveHandshake(w http.ResponseWriter, r *http.Request, q url.Values) {
	transport := q.Get("transport")
	if eio := q.Get("EIO"); eio != "4" && (eio != "3" || !g.allowEIO3) {
		g.refuse(w, r, "", transport, http.StatusBadRequest, eioCodeUnsupportedProtocol,
			"Unsupported protocol version", fmt.Sprintf("unsupported protocol version EIO=%q", eio))
		return
	}
	if !g.admit() {
		g.refuse(w, r, "", transport, http.StatusServiceUnavailable, eioCodeBadRequest,
			"Too many connections", fmt.Sprintf("%d sessions open, the limit", g.maxConns))
		return
	}
	defer g.release()
	g.next.ServeHTTP(w, r)
}

// admit reserves room for one more session. Sessions are counted by the
// engine once the handshake is done; pending counts the handshakes in
// between, so concurrent handshakes cannot overshoot the limit.
func (g *guard) admit() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.eio.ClientsCount()+g.pending >= g.maxConns {
		return false
	}
	g.pending++
	return true
}

func (g *guard) release() {
	g.mu.Lock()
	g.pending--
	g.mu.Unlock()
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		sock.Close(true)
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			g.refuse(w, r, sid, transport, http.StatusRequestEntityTooLarge, eioCodeBadRequest,
				"Payload too large", fmt.Sprintf("body over maxHttpBufferSize %d", g.maxBody))
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
	if sock.Protocol() == 4 {
		g.redeliverPongs(sock)
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
			reason += ": " + fmt.Sprint(args[1])
		}
		g.log.Debug("session closed", "sid", sid, "transport", sessionTransport(sock), "remote", remote,
			"reason", reason)
	})
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

func newStrictParser(maxAttachmentBytes int64) *strictParser {
	return &strictParser{Parser: parser.NewParser(), maxAttachmentBytes: maxAttachmentBytes}
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
		text = v.String() // does not consume the buffer
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
