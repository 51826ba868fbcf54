package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// healthReserve is how many connections are accepted beyond
// -max-http-connections to answer /healthz and /readyz (and a 503 to
// anything else): a full server still tells its probes how it is.
const healthReserve = 32

// reserveDeadline bounds a connection of the health reserve, request and
// answer together: a probe is quick, a stalled connection gives its slot
// back soon.
const reserveDeadline = 5 * time.Second

// limitListener is the public port's admission (docs/OPERATING.md, "Limits"):
//
//   - It bounds the HTTP connections open at once (-max-http-connections). A
//     connection counts until it is closed, or taken over as a WebSocket,
//     which the session limit bounds from then on.
//   - Beyond that bound, healthReserve more are accepted for the health
//     probes: on them /healthz is answered, /readyz answers 503 "at
//     capacity", anything else 503; beyond those, a connection is closed at
//     once.
//   - It bounds, per client address (per /64 for IPv6), the connections
//     that are not serving a session (-max-pending-per-ip): connections
//     waiting for or reading their request headers, idle keep-alive
//     connections, and requests that are not a session's (handshakes,
//     static files, health probes) while they run. A session's long poll or
//     POST (a request with a sid on the Engine.IO path) does not count while
//     it runs: sessions have their own limit. A connection from an address
//     at its bound is closed at once, so one address cannot hold every slot
//     with slow or idle connections.
//
// Accept runs on the http.Server's accept goroutine; the handler wrapper
// (handler) on the requests' goroutines, and release on whichever goroutine
// closes or hijacks a connection. mu guards the per-address counts and
// every countedConn's state.
type limitListener struct {
	net.Listener
	max      int64
	perIP    int // 0: no per-address bound
	log      *slog.Logger
	onRefuse func(status int, reason string) // counts a refusal; nil counts nothing
	open     atomic.Int64                    // connections counted against max
	reserved atomic.Int64                    // connections of the health reserve
	refused  atomic.Uint64
	logged   atomic.Int64 // unix second of the last refusal logged at warn

	closeOnce sync.Once
	closeErr  error

	mu      sync.Mutex
	pending map[netip.Addr]int        // per address: connections not serving a session
	conns   map[*countedConn]struct{} // every connection not yet released
}

func newLimitListener(ln net.Listener, maxConns, perIP int, log *slog.Logger) *limitListener {
	return &limitListener{
		Listener: ln,
		max:      int64(maxConns),
		perIP:    perIP,
		log:      log,
		pending:  make(map[netip.Addr]int),
		conns:    make(map[*countedConn]struct{}),
	}
}

// addrKey is the address a connection is counted under: its IP, and for
// IPv6 its /64 (one host usually has a whole /64).
func addrKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr().Unmap() // no string to format and parse, per accepted connection
	} else {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		ip = ap.Addr().Unmap()
	}
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		l.mu.Lock()
		if l.perIP > 0 && l.pending[key] >= l.perIP {
			l.mu.Unlock()
			l.refuse(c, "too_many_pending_per_address", "too many connections from this address (-max-pending-per-ip)")
			continue
		}
		reserve := false
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			if l.reserved.Add(1) > healthReserve {
				l.reserved.Add(-1)
				l.mu.Unlock()
				l.refuse(c, "too_many_http_connections", "too many HTTP connections (-max-http-connections)")
				continue
			}
			reserve = true
		}
		cc := &countedConn{Conn: c, l: l, key: key, reserve: reserve, pending: true}
		l.pending[key]++
		l.conns[cc] = struct{}{}
		l.mu.Unlock()
		if reserve {
			_ = c.SetDeadline(time.Now().Add(reserveDeadline))
		}
		return cc, nil
	}
}

// Close closes the listener; later calls do nothing and return nil (serve
// closes it before http.Server.Shutdown does).
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

// refuse closes a connection at once, counts it, and logs it at most once a second.
func (l *limitListener) refuse(c net.Conn, reason, why string) {
	l.refused.Add(1)
	if l.onRefuse != nil {
		l.onRefuse(0, reason)
	}
	_ = c.Close()
	if now := time.Now().Unix(); l.logged.Swap(now) != now {
		l.log.Warn("refused connection", "remote", c.RemoteAddr().String(), "open", l.open.Load(), "reason", why)
	}
}

// setPending moves a connection in or out of its address's count of
// connections not serving a session.
func (l *limitListener) setPending(c *countedConn, pending bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released || c.pending == pending {
		return
	}
	c.pending = pending
	if pending {
		l.pending[c.key]++
	} else {
		l.decPendingLocked(c.key)
	}
}

func (l *limitListener) decPendingLocked(key netip.Addr) {
	if n := l.pending[key] - 1; n > 0 {
		l.pending[key] = n
	} else {
		delete(l.pending, key)
	}
}

// Pending is the number of connections of addr's that do not serve a session.
func (l *limitListener) Pending(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pending[addr]
}

// expireIdle ends, at once, every connection that is not running a
// request of a session: at shutdown, connections that wait for a request
// (which http.Server.Shutdown would otherwise wait for, up to 5 s, when
// they never sent one) end now.
func (l *limitListener) expireIdle() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if c.pending && !c.inRequest {
			_ = c.Conn.SetReadDeadline(time.Now())
		}
	}
}

// connKey is the context key of a request's *countedConn.
type connKey struct{}

// connContext is the http.Server's ConnContext: it lets handler find the
// connection of a request.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc := countedOf(c); cc != nil {
		return context.WithValue(ctx, connKey{}, cc)
	}
	return ctx
}

// countedOf is the countedConn c is, or wraps (a connection the engine
// gives back after serving its long polls: engineio.HandBack), or nil.
func countedOf(c net.Conn) *countedConn {
	for {
		if cc, ok := c.(*countedConn); ok {
			return cc
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		c = u.NetConn()
	}
}

// connState is the http.Server's ConnState. A hijacked connection is
// still counted: the engine tells it what it became (Upgraded,
// ServingSession), and it is released when it is closed. One the engine
// gives back is net/http's again (StateNew).
func (l *limitListener) connState(c net.Conn, state http.ConnState) {
	cc := countedOf(c)
	if cc == nil {
		return
	}
	switch state {
	case http.StateNew, http.StateHijacked:
		l.mu.Lock()
		cc.hijacked = state == http.StateHijacked
		l.mu.Unlock()
	case http.StateClosed:
		cc.release()
	}
}

// handler wraps the public handler: it keeps the per-address counts as
// requests start and end, answers the health reserve's connections, and
// makes /readyz answer 503 "at capacity" while full() says so (no room for
// another session), so that a load balancer sends new clients elsewhere.
func (l *limitListener) handler(next http.Handler, enginePath string, full func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(connKey{}).(*countedConn)
		if c == nil {
			next.ServeHTTP(w, r)
			return
		}
		if c.reserve {
			l.serveReserve(w, r, next, enginePath)
			return
		}
		if r.URL.Path == "/readyz" && r.Method == http.MethodGet && full != nil && full() {
			notReady(w)
			return
		}
		session := strings.HasPrefix(r.URL.Path, enginePath) && strings.Contains(r.URL.RawQuery, "sid=")
		l.mu.Lock()
		c.inRequest = true
		l.mu.Unlock()
		if session {
			l.setPending(c, false)
		}
		defer func() {
			l.mu.Lock()
			if c.hijacked {
				// The engine's now (a WebSocket, or long polls it serves
				// itself), which keeps the counts from here on.
				l.mu.Unlock()
				return
			}
			c.inRequest = false
			l.mu.Unlock()
			if session {
				l.setPending(c, true) // now idle, unless closed
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// notReady is /readyz's answer when the server has no room for new clients.
func notReady(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("not ready: at capacity\n"))
}

// serveReserve answers a request on a connection of the health reserve,
// which is then closed: /healthz as usual, /readyz 503 "at capacity",
// anything else 503 with Retry-After.
func (l *limitListener) serveReserve(w http.ResponseWriter, r *http.Request, next http.Handler, enginePath string) {
	w.Header().Set("Connection", "close")
	switch {
	case r.URL.Path == "/healthz":
		next.ServeHTTP(w, r)
	case r.URL.Path == "/readyz":
		notReady(w)
	default:
		if l.onRefuse != nil {
			l.onRefuse(http.StatusServiceUnavailable, "too_many_http_connections")
		}
		w.Header().Set("Retry-After", "1")
		if strings.HasPrefix(r.URL.Path, enginePath) {
			engineio.WriteError(w, http.StatusServiceUnavailable, 3, "Too many connections")
			return
		}
		http.Error(w, "server at capacity, try again later", http.StatusServiceUnavailable)
	}
}

// countedConn is a connection counted by its limitListener. Its fields
// but Conn are guarded by l.mu.
type countedConn struct {
	net.Conn
	l         *limitListener
	key       netip.Addr
	reserve   bool // of the health reserve, not counted against max
	pending   bool // counted in l.pending[key]
	inRequest bool // a handler runs a request of this connection, or the engine a session's
	hijacked  bool // the engine's, not net/http's
	released  bool
}

// Upgraded is the engine's (engineio.ConnObserver): the connection is a
// WebSocket now, which the session limit bounds.
func (c *countedConn) Upgraded() { c.release() }

// ServingSession is the engine's (engineio.ConnObserver), on a keep-alive
// connection whose long polls it serves itself: a session's request starts
// or ends, as in handler.
func (c *countedConn) ServingSession(serving bool) {
	c.l.mu.Lock()
	c.inRequest = serving
	c.l.mu.Unlock()
	c.l.setPending(c, !serving)
}

// release takes the connection out of the counts, once: when it is
// closed, or becomes a WebSocket.
func (c *countedConn) release() {
	l := c.l
	l.mu.Lock()
	if c.released {
		l.mu.Unlock()
		return
	}
	c.released = true
	if c.pending {
		c.pending = false
		l.decPendingLocked(c.key)
	}
	delete(l.conns, c)
	l.mu.Unlock()
	if c.reserve {
		l.reserved.Add(-1)
	} else {
		l.open.Add(-1)
	}
}

func (c *countedConn) Close() error {
	c.release()
	return c.Conn.Close()
}

// NetConn is the connection underneath (the engine takes WebSockets' sockets from it).
func (c *countedConn) NetConn() net.Conn { return c.Conn }
