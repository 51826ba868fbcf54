package socketio

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// client is the Socket.IO side of one Engine.IO session: it decodes the
// session's packets and routes them to the session's sockets (one per
// namespace joined). Its engineio.SessionHandler methods run one at a time
// (see engineio.SessionHandler); the fields marked so belong to them.
type client struct {
	srv  *Server
	conn *engineio.Session

	mu           sync.Mutex
	sockets      []*Socket
	connectTimer *time.Timer

	// owned by the handler calls
	pending      *packet // a binary packet waiting for its attachments
	pendingBytes int64

	wire atomic.Uint32 // its parserKind; kindAuto until its first packet (see parser_msgpack.go)
}

var _ engineio.SessionHandler = (*client)(nil)

// newClient is the engine's connect function: it runs on the handshake's
// goroutine, before the handshake is answered.
func (s *Server) newClient(conn *engineio.Session) engineio.SessionHandler {
	c := &client{srv: s, conn: conn}
	c.initWire()
	s.clients.add()
	c.mu.Lock()
	c.connectTimer = time.AfterFunc(s.opts.ConnectTimeout, c.onConnectTimeout)
	c.mu.Unlock()
	if conn.Protocol() == 3 {
		// Engine.IO v3 clients (Socket.IO v2) are in "/" without asking.
		c.connect("/", nil)
	}
	return c
}

func (c *client) onConnectTimeout() {
	c.conn.Do(func() {
		c.mu.Lock()
		joined := len(c.sockets) > 0
		c.mu.Unlock()
		if !joined {
			c.srv.log.Debug("closing a session that joined no namespace", "sid", c.conn.ID(),
				"remote", c.conn.RemoteAddr(), "reason", "connect timeout")
			c.conn.Close(ReasonForcedClose)
		}
	})
}

// OnMessage decodes one Engine.IO message: a packet, or an attachment of
// the binary packet being assembled.
func (c *client) OnMessage(data []byte, binary bool) {
	if c.wireMessage(data, binary) {
		return
	}
	if binary {
		p := c.pending
		if p == nil {
			c.refuse(errUnexpectedBin)
			return
		}
		c.pendingBytes += int64(len(data))
		if c.pendingBytes > c.srv.opts.MaxAttachmentBytes {
			c.refuse(fmt.Errorf("%w: attachments over %d bytes", errAttachmentSize, c.srv.opts.MaxAttachmentBytes))
			return
		}
		p.bins = append(p.bins, data)
		if len(p.bins) < p.attachments {
			return
		}
		c.pending, c.pendingBytes = nil, 0
		c.handle(p)
		return
	}
	if c.pending != nil {
		c.refuse(errPlainInBinary)
		return
	}
	p, err := decodePacket(data)
	if err != nil {
		c.refuse(err)
		return
	}
	if p.attachments > 0 {
		c.pending = p
		return
	}
	c.handle(p)
}

// refuse closes the session of a client that broke the protocol, as Node
// does (its sockets see "forced close"), and logs why.
func (c *client) refuse(err error) {
	c.srv.log.Warn("refused packet", "sid", c.conn.ID(), "transport", c.conn.Transport(),
		"remote", c.conn.RemoteAddr(), "reason", err.Error())
	c.pending = nil
	c.closeSockets(ReasonForcedClose, err)
	c.conn.Close(ReasonForcedClose)
}

// handle routes a whole packet.
func (c *client) handle(p *packet) {
	name, auth := p.nsp, json.RawMessage(p.data)
	if c.conn.Protocol() == 3 {
		// Socket.IO v2 puts the auth in the namespace's query string.
		if u, err := url.Parse(p.nsp); err == nil {
			name = u.Path
			if q := u.Query(); len(q) > 0 {
				obj := make(map[string]any, len(q))
				for k := range q {
					obj[k] = q.Get(k)
				}
				auth, _ = appendJSON(nil, obj)
			}
		}
	}
	s := c.socket(name)
	switch {
	case s == nil && p.typ == typeConnect:
		c.connect(name, auth)
	case s != nil && p.typ != typeConnect:
		if err := s.onPacket(p); err != nil {
			c.refuse(err)
		}
	case s == nil:
		c.refuse(errNotJoined)
	default:
		c.refuse(errJoinedTwice)
	}
}

func (c *client) socket(nsp string) *Socket {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.sockets {
		if s.nsp.name == nsp {
			return s
		}
	}
	return nil
}

func (c *client) remove(s *Socket) {
	c.mu.Lock()
	if i := slices.Index(c.sockets, s); i >= 0 {
		c.sockets = slices.Delete(c.sockets, i, i+1)
	}
	c.mu.Unlock()
}

// connect joins the client to a namespace: middlewares, then (atomically
// with respect to broadcasts) recovery, membership, the CONNECT answer and
// the missed packets; then the connection handlers.
func (c *client) connect(name string, auth json.RawMessage) {
	nsp := c.srv.connectNamespace(name, auth)
	if nsp == nil {
		_ = c.conn.Send(encodeControlFor(c.kind(), typeConnectError, name, errorPayload(errInvalidNamespace, c.conn.Protocol())))
		c.srv.hooks.Load().onConnectError(nil, errInvalidNamespace)
		return
	}
	defer nsp.connectDone()
	onConnect, middlewares := nsp.handlers()
	pid, offset := recoveryAuth(auth)
	ranMiddlewares := false
	for attempt := 0; attempt < 2; attempt++ {
		s := &Socket{nsp: nsp, client: c}
		if auth != nil {
			s.ext = &socketExtra{auth: auth}
		}
		var saved *savedSession
		sa := nsp.sessionAdapter()
		var st *SessionState
		if sa != nil && pid != "" && attempt == 0 {
			st = c.restoreFromAdapter(sa, pid, offset)
		} else if nsp.log != nil && pid != "" && attempt == 0 {
			nsp.mu.Lock()
			saved = nsp.log.usableLocked(pid, offset)
			nsp.mu.Unlock()
		}
		if st != nil {
			s.id, s.recovered, s.data = st.SID, true, st.Data
			s.setPID(pid)
		} else if saved != nil {
			s.id, s.recovered, s.data = saved.sid, true, saved.data
			s.setPID(pid)
		} else {
			s.id = c.newSocketID(nsp)
			if nsp.log != nil {
				s.setPID(engineio.NewID())
			}
		}
		skip := s.recovered && c.srv.opts.Recovery.SkipMiddlewares
		if !skip && !ranMiddlewares {
			ranMiddlewares = true
			for _, mw := range middlewares {
				if err := mw(s); err != nil {
					if !c.conn.Closed() {
						_ = c.conn.Send(encodeControlFor(c.kind(), typeConnectError, name, errorPayload(err, c.conn.Protocol())))
					}
					c.srv.hooks.Load().onConnectError(nsp, err)
					return
				}
			}
		}
		if c.conn.Closed() {
			return
		}
		if st != nil {
			joined := false
			ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
			err := sa.ResumeSession(ctx, st, offset, func(missed []MissedPacket) bool {
				joined = c.joinRestored(s, st, missed)
				return joined
			})
			cancel()
			if err != nil || !joined {
				if c.conn.Closed() {
					return
				}
				continue // a fresh session, as when there is none to recover
			}
		} else if !c.join(s, offset) {
			continue // the session to recover went away meanwhile
		} else if sa != nil {
			s.persistSession()
		}
		c.srv.hooks.Load().onConnect(s)
		for _, fn := range onConnect {
			fn(s)
		}
		return
	}
}

// join makes s a member of its namespace and answers the client. For a
// recovered socket it takes the saved session and queues the missed
// packets; it reports false when the session is gone.
func (c *client) join(s *Socket, offset string) bool {
	nsp := s.nsp
	nsp.mu.Lock()
	var missed [][]engineio.Message
	if s.recovered {
		saved, packets, ok := nsp.log.takeLocked(s.pid(), offset, c.kind())
		if !ok {
			nsp.mu.Unlock()
			return false
		}
		for _, r := range saved.rooms {
			if r != s.id {
				s.rooms = append(s.rooms, r)
			}
		}
		missed = packets
	}
	nsp.addLocked(s)
	c.mu.Lock()
	c.sockets = append(c.sockets, s)
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()
	_ = c.conn.Send(c.connectPacket(s))
	for _, msgs := range missed {
		_ = s.send(msgs)
	}
	nsp.mu.Unlock()
	return true
}

// connectPacket is the CONNECT answer: {"sid":…} (and "pid" with
// recovery), or an empty one for Socket.IO v2 clients.
func (c *client) connectPacket(s *Socket) engineio.Message {
	if c.conn.Protocol() == 3 {
		return encodeControlFor(c.kind(), typeConnect, s.nsp.name, nil)
	}
	return encodeControlFor(c.kind(), typeConnect, s.nsp.name, connectPayload(s.id, s.pid()))
}

// connectPayload is the CONNECT answer's payload, {"sid":…} with "pid"
// when there is one: written out for the usual ids (URL-safe base64, as
// engineio.NewID makes them, nothing to escape), not with json.Marshal on
// every connect; encoding/json for any other.
func connectPayload(sid, pid string) []byte {
	if !plainID(sid) || !plainID(pid) {
		b, _ := json.Marshal(struct {
			SID string `json:"sid"`
			PID string `json:"pid,omitempty"`
		}{sid, pid}) // cannot fail: two strings
		return b
	}
	b := make([]byte, 0, len(`{"sid":"","pid":""}`)+len(sid)+len(pid))
	b = append(b, `{"sid":"`...)
	b = append(b, sid...)
	if pid != "" {
		b = append(b, `","pid":"`...)
		b = append(b, pid...)
	}
	return append(b, `"}`...)
}

// plainID reports whether id has only characters JSON leaves as they are
// and ids are made of: letters, digits, '-', '_' and '='.
func plainID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// newSocketID is a fresh socket id: random for Socket.IO v5 (the session
// id is private), the session id (with the namespace) for v2 clients.
func (c *client) newSocketID(nsp *Namespace) string {
	if c.conn.Protocol() == 3 {
		if nsp.name == "/" {
			return c.conn.ID()
		}
		return nsp.name + "#" + c.conn.ID()
	}
	return engineio.NewID()
}

// recoveryAuth reads the recovery fields of a CONNECT's auth payload.
func recoveryAuth(auth json.RawMessage) (pid, offset string) {
	if len(auth) == 0 {
		return "", ""
	}
	var a struct {
		PID    any `json:"pid"`
		Offset any `json:"offset"`
	}
	if json.Unmarshal(auth, &a) != nil {
		return "", ""
	}
	p, ok1 := a.PID.(string)
	o, ok2 := a.Offset.(string)
	if !ok1 || !ok2 {
		return "", ""
	}
	return p, o
}

// closeSockets disconnects every socket of the client with reason.
func (c *client) closeSockets(reason string, cause error) {
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	for _, s := range sockets {
		if s.leave(reason, cause) {
			s.finishDisconnect(reason, cause)
		}
	}
}

// disconnectAll disconnects every socket with a DISCONNECT packet, then
// closes the session once they are delivered.
func (c *client) disconnectAll(cause error) {
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	var left []*Socket
	for _, s := range sockets {
		if s.leave(ReasonServerNamespaceDisconnect, cause) {
			_ = c.conn.Send(encodeControlFor(c.kind(), typeDisconnect, s.nsp.name, nil))
			left = append(left, s)
		}
	}
	c.conn.Close(ReasonForcedClose)
	for _, s := range left {
		s.finishDisconnect(ReasonServerNamespaceDisconnect, cause)
	}
}

// OnQueueOverflow disconnects a client that stopped reading: its queue
// was dropped; the DISCONNECT packets are the session's last.
func (c *client) OnQueueOverflow() {
	c.srv.log.Warn("disconnecting slow client: send queue full", "sid", c.conn.ID(), "transport", c.conn.Transport(),
		"remote", c.conn.RemoteAddr(), "reason", "slow consumer")
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	var last []engineio.Message
	var left []*Socket
	for _, s := range sockets {
		if s.leave(ReasonServerNamespaceDisconnect, ErrSlowConsumer) {
			last = append(last, encodeControlFor(c.kind(), typeDisconnect, s.nsp.name, nil))
			left = append(left, s)
		}
	}
	c.conn.Close("slow consumer", last...)
	for _, s := range left {
		s.finishDisconnect(ReasonServerNamespaceDisconnect, ErrSlowConsumer)
	}
}

// OnClose disconnects the sockets of a closed session.
func (c *client) OnClose(reason string, err error) {
	c.mu.Lock()
	if c.connectTimer != nil {
		c.connectTimer.Stop()
		c.connectTimer = nil
	}
	c.mu.Unlock()
	c.pending = nil
	c.endWire()
	c.closeSockets(reason, err)
	c.srv.clients.done()
}

// OnUpgrade is told when the session moved from polling to WebSocket.
func (c *client) OnUpgrade() {
	c.mu.Lock()
	sockets := slices.Clone(c.sockets)
	c.mu.Unlock()
	for _, s := range sockets {
		s.nsp.srv.upgraded(s)
	}
}
