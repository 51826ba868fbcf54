package engineio

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// KeepAlive configures the keep-alive fast path for long-polling
// (Options.KeepAlive). With it, once net/http has served a polling request
// (GET or POST of an open session) on an HTTP/1.1 keep-alive connection,
// the server takes the connection over and serves its later polling
// requests itself, on the epoll engine: a pending GET costs no goroutine,
// and a request costs a read, a strict parse of its head and a write,
// without net/http's per-request allocations. Linux only, and only for
// plain TCP connections; elsewhere it does nothing.
//
// The handlers in front of the engine (routing, CORS, a Host check…) see
// the requests net/http serves only. A request is served on the fast path
// only if net/http served one with the same path, Host and Origin on the
// connection (up to 4 such identities are kept: a browser's POSTs carry
// Origin, its same-origin GETs do not), so that those handlers would
// decide the same, and the headers they added to that answer are added to
// its answer; they must not depend on anything else of a request
// (cookies, other headers, a per-request count). Every other request
// (another path, a handshake, a WebSocket upgrade, a request the strict
// parser does not take, a poll the session would refuse) is handed back
// to net/http, with the bytes already read,
// through HandBack.
type KeepAlive struct {
	// HandBack receives the connections given back; the application serves
	// it with its http.Server (go srv.Serve(ka.HandBack)). Required.
	HandBack *HandBack
	// IdleTimeout closes a connection that has waited that long for its
	// next request. Defaults to 2 minutes (give http.Server's IdleTimeout).
	IdleTimeout time.Duration
	// HeaderTimeout bounds the arrival of a request's head, from its first
	// byte. Defaults to 10 seconds (http.Server's ReadHeaderTimeout).
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's head; a longer one is handed back
	// (net/http answers 431). Defaults to 64 KiB (http.Server's
	// MaxHeaderBytes, if smaller, is the one to give).
	MaxHeaderBytes int
}

func (k *KeepAlive) setDefaults() {
	if k.IdleTimeout <= 0 {
		k.IdleTimeout = 2 * time.Minute
	}
	if k.HeaderTimeout <= 0 {
		k.HeaderTimeout = 10 * time.Second
	}
	if k.MaxHeaderBytes <= 0 {
		k.MaxHeaderBytes = 64 << 10
	}
}

// ConnObserver may be implemented by the connections an http.Server's
// listener gives it (an admission control that counts them): the engine
// tells a connection it hijacked what became of it.
type ConnObserver interface {
	// Upgraded: the connection now carries a WebSocket.
	Upgraded()
	// ServingSession: on a connection the keep-alive fast path serves, a
	// session's request starts (true) or ends (false). It is called with
	// false once when the fast path takes the connection over.
	ServingSession(serving bool)
}

// HandBack is the net.Listener through which the keep-alive fast path
// gives connections back to net/http (see KeepAlive). A connection given
// back reads first what the engine had read of it; it is the connection
// the engine hijacked, or wraps it (NetConn returns it).
//
// The fast path takes no connection over until Accept has been called (the
// HandBack is served), nor after Close.
type HandBack struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	once   sync.Once
	served atomic.Bool
}

// NewHandBack returns a HandBack whose Addr is addr (the public
// listener's; nil gives an empty TCP address).
func NewHandBack(addr net.Addr) *HandBack {
	if addr == nil {
		addr = &net.TCPAddr{}
	}
	return &HandBack{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// open reports whether connections may be taken over: the HandBack is
// served and not closed.
func (h *HandBack) open() bool {
	if !h.served.Load() {
		return false
	}
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// Accept waits for a connection given back.
func (h *HandBack) Accept() (net.Conn, error) {
	h.served.Store(true)
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept; connections given back later are closed.
func (h *HandBack) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// Addr is the address given to NewHandBack.
func (h *HandBack) Addr() net.Addr { return h.addr }

// give hands c to Accept, or closes it if the HandBack is closed.
func (h *HandBack) give(c net.Conn) {
	select {
	case h.ch <- c:
	case <-h.done:
		_ = c.Close()
	}
}

// returnedConn is a connection given back to net/http, with bytes the
// engine had read. Conn is a connection on the socket made anew from the
// engine's descriptor (the takeover closed the first one's, so that Go's
// network poller no longer watched the socket too); acct is the connection
// the listener gave, kept for what it counts (NetConn, ConnObserver) and
// closed with it.
type returnedConn struct {
	net.Conn
	acct net.Conn
	mu   sync.Mutex
	pre  []byte
	// ids are the identities the fast path knew the connection by: a new
	// takeover keeps them (a browser's GETs come without Origin, its POSTs
	// with it, on the same connections).
	ids []kaIdentity
}

// kaIdentity is what the handlers in front of the engine looked at in a
// polling request net/http served (its path, Host and Origin), with the
// header lines they added to its answer: the fast path serves a request
// with the same three and adds the same lines (see KeepAlive).
type kaIdentity struct {
	path, host, origin string
	hasOrigin          bool
	extra              []byte
}

func (c *returnedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

// CloseWrite shuts the connection's writing side, as net/http does before
// closing a connection whose client may still be sending (its
// closeWriteAndWait): without it, what the client sent and net/http did
// not read turns the close into a reset, which can destroy the last
// answer (a 431) before the client has read it.
func (c *returnedConn) CloseWrite() error {
	for inner := c.Conn; inner != nil; {
		if cw, ok := inner.(interface{ CloseWrite() error }); ok {
			return cw.CloseWrite()
		}
		u, ok := inner.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		inner = u.NetConn()
	}
	return nil
}

// NetConn is the connection the listener gave, which the engine had
// hijacked (its own descriptor closed: see liveTCP).
func (c *returnedConn) NetConn() net.Conn { return c.acct }

// Close closes the connection and the listener's.
func (c *returnedConn) Close() error {
	err := c.Conn.Close()
	_ = c.acct.Close()
	return err
}

func (c *returnedConn) Upgraded() {
	if o, ok := c.acct.(ConnObserver); ok {
		o.Upgraded()
	}
}

func (c *returnedConn) ServingSession(serving bool) {
	if o, ok := c.acct.(ConnObserver); ok {
		o.ServingSession(serving)
	}
}

// unread is what was read of a hijacked connection and not yet served:
// what net/http's reader buffered and, for a connection given back
// earlier, the bytes the engine had read that net/http has not taken yet,
// which follow it (and come before what the socket has). nil if none.
func unread(nc net.Conn, br *bufio.Reader) []byte {
	var in []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		in = append(make([]byte, 0, n), b...)
	}
	if fh, ok := nc.(*frontHijacked); ok {
		nc = fh.returnedConn
	}
	if back, ok := nc.(*returnedConn); ok {
		back.mu.Lock()
		in = append(in, back.pre...)
		back.pre = nil
		back.mu.Unlock()
	}
	return in
}
