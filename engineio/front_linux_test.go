package engineio

// Tests of the front door (Front, front_linux.go) over real loopback
// connections: Front.Serve serves the listener, an http.Server serves the
// HandBack, as run.go wires them. Every handler marks its answer with
// X-Via ("front" or "net/http": net/http's requests carry
// http.ServerContextKey, the front's do not), which tells who served a
// request; Counts tells how many connections each took.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/gorilla/websocket"
)

// requireEpoll skips the test where the epoll engine cannot start, and
// fails it under CI, where it must.
func requireEpoll(tb testing.TB) {
	tb.Helper()
	if epollEngine() == nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("the epoll engine cannot start (CI=true: the front door must be tested)")
		}
		tb.Skip("the epoll engine cannot start")
	}
}

// frontCtxKey is the context key the tests' ConnContext adds.
type frontCtxKey struct{}

// stateLog records the ConnState calls, by the connection's remote address.
type stateLog struct {
	mu sync.Mutex
	m  map[string][]http.ConnState
}

func (l *stateLog) add(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = make(map[string][]http.ConnState)
	}
	k := c.RemoteAddr().String()
	l.m[k] = append(l.m[k], st)
}

// of is what was recorded for the connection whose client end is local.
func (l *stateLog) of(local net.Addr) []http.ConnState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.m[local.String()])
}

// waitStates waits until the states recorded for local are want.
func (l *stateLog) waitStates(tb testing.TB, who string, local net.Addr, want ...http.ConnState) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%s ConnState of %s to be %v", who, local, want),
		func() bool { return slices.Equal(l.of(local), want) })
}

// via is who serves r: net/http puts its server in the context.
func via(r *http.Request) string {
	if r.Context().Value(http.ServerContextKey) != nil {
		return "net/http"
	}
	return "front"
}

// reqInfo is what a handler saw of a request.
type reqInfo struct {
	Method, Proto, RequestURI, URL, Host string
	ProtoMajor, ProtoMinor               int
	Header                               http.Header
	ContentLength                        int64
	Close                                bool
	TransferEncoding                     []string
	HasBody                              bool
	RemoteAddr                           string
	ConnValue, LocalAddr                 any
	Via                                  string
}

func captureReq(r *http.Request) reqInfo {
	return reqInfo{
		Method: r.Method, Proto: r.Proto, RequestURI: r.RequestURI, URL: r.URL.String(), Host: r.Host,
		ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: r.Header.Clone(), ContentLength: r.ContentLength, Close: r.Close,
		TransferEncoding: r.TransferEncoding, HasBody: r.Body != nil,
		RemoteAddr: r.RemoteAddr, ConnValue: r.Context().Value(frontCtxKey{}),
		LocalAddr: r.Context().Value(http.LocalAddrContextKey), Via: via(r),
	}
}

// sameReq compares what net/http and the front give a handler, but for
// the fields that differ by connection.
func sameReq(a, b reqInfo) string {
	a.RemoteAddr, a.ConnValue, a.LocalAddr, a.Via = "", nil, nil, ""
	b.RemoteAddr, b.ConnValue, b.LocalAddr, b.Via = "", nil, nil, ""
	sa, sb := fmt.Sprintf("%#v", a), fmt.Sprintf("%#v", b)
	if sa == sb {
		return ""
	}
	var d []string
	if hd := sameHeaders(a.Header, b.Header); hd != "" {
		d = append(d, "header: "+hd)
	}
	a.Header, b.Header = nil, nil
	if sa, sb = fmt.Sprintf("%+v", a), fmt.Sprintf("%+v", b); sa != sb {
		d = append(d, sa+" vs "+sb)
	}
	return strings.Join(d, "; ")
}

// frontConfig is how a test's frontServer is set up.
type frontConfig struct {
	maxHeaderBytes int           // the front's and http.Server's; default 4096
	headerTimeout  time.Duration // the front's; default 10 s
	custom         http.Handler  // serves /custom/ (in the front's Paths)
	log            *slog.Logger  // the front's; default the test's
	// serveHandBack, if set, serves the HandBack instead of the http.Server.
	serveHandBack func(hb *HandBack)
}

// frontServer is an engine (on kaPath) and other routes behind a Front
// that serves a loopback listener, and an http.Server that serves its
// HandBack.
type frontServer struct {
	*Server
	sessionFeed
	front      *Front
	addr       string
	mux        *http.ServeMux
	reqs       chan reqInfo // the engine's requests
	states     stateLog     // the front's ConnState
	httpStates stateLog     // net/http's
	hs         *http.Server

	ln       net.Listener
	stopOnce sync.Once
	serveErr chan error
	stopErr  error
}

// frontGoListener makes startFront serve connections of Go's own
// listener (the front copies their sockets) instead of an
// AcceptListener's (TestFrontGoListener).
var frontGoListener bool

func startFront(tb testing.TB, cfg frontConfig) *frontServer {
	tb.Helper()
	requireEpoll(tb)
	if cfg.maxHeaderBytes == 0 {
		cfg.maxHeaderBytes = 4096
	}
	if cfg.log == nil {
		cfg.log = testLogger(tb)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	if !frontGoListener {
		ln = AcceptListener(ln)
		if _, ok := ln.(*acceptListener); !ok {
			tb.Fatal("AcceptListener returned the listener as it was")
		}
	}
	hb := NewHandBack(ln.Addr())
	s := &frontServer{addr: ln.Addr().String(), ln: ln, sessionFeed: newSessionFeed(),
		reqs: make(chan reqInfo, 64), serveErr: make(chan error, 1)}
	s.Server = NewServer(Options{IOMode: IOModeEpoll, Logger: testLogger(tb), CloseTimeout: 300 * time.Millisecond,
		PingInterval: time.Hour}, func(sess *Session) SessionHandler {
		r := newRecorder(sess, true)
		s.opened <- r
		return r
	})
	mux := http.NewServeMux()
	mux.HandleFunc(kaPath, func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.reqs <- captureReq(r):
		default:
		}
		w.Header().Set("X-Via", via(r))
		s.Server.ServeHTTP(w, r)
	})
	if cfg.custom != nil {
		mux.Handle("/custom/", cfg.custom)
	}
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Via", via(r))
		_, _ = io.WriteString(w, "other")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Via", via(r))
		_, _ = io.Copy(w, r.Body)
	})
	mux.HandleFunc("/elsewhere/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Via", via(r))
		_, _ = io.WriteString(w, "elsewhere "+via(r))
	})
	s.mux = mux
	connContext := func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, frontCtxKey{}, "conn "+c.RemoteAddr().String())
	}
	s.hs = &http.Server{Handler: mux, MaxHeaderBytes: cfg.maxHeaderBytes, ConnContext: connContext,
		ConnState: s.httpStates.add, ErrorLog: log.New(testlog.Writer(tb), "http: ", 0)}
	s.front = &Front{Handler: mux, HandBack: hb, Paths: []string{kaPath, "/custom/"},
		HeaderTimeout: cfg.headerTimeout, MaxHeaderBytes: cfg.maxHeaderBytes,
		ConnContext: connContext, ConnState: s.states.add, Log: cfg.log}
	if cfg.serveHandBack != nil {
		cfg.serveHandBack(hb)
	} else {
		go func() { _ = s.hs.Serve(hb) }()
	}
	go func() { s.serveErr <- s.front.Serve(ln) }()
	tb.Cleanup(func() {
		s.Server.Close()
		if err := s.stop(tb); !errors.Is(err, net.ErrClosed) {
			tb.Errorf("Serve returned %v, want net.ErrClosed", err)
		}
		_ = s.hs.Close()
		_ = hb.Close()
		waitFor(tb, "the sessions gone after Close", func() bool { return s.Server.Len() == 0 })
	})
	return s
}

// stop closes the listener and waits for Serve to return its error.
func (s *frontServer) stop(tb testing.TB) error {
	tb.Helper()
	s.stopOnce.Do(func() {
		_ = s.ln.Close()
		select {
		case s.stopErr = <-s.serveErr:
		case <-time.After(waitTimeout):
			s.stopErr = errors.New("Serve did not return")
		}
	})
	return s.stopErr
}

// waiting is the number of connections the front holds, waiting for their head.
func (s *frontServer) waiting() int {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	return len(s.front.conns)
}

func (s *frontServer) checkCounts(tb testing.TB, served, given uint64) {
	tb.Helper()
	if gs, gg := s.front.Counts(); gs != served || gg != given {
		tb.Errorf("Counts() = served %d, given %d; want %d, %d", gs, gg, served, given)
	}
}

// dialRaw opens a raw HTTP client connection to addr.
func dialRaw(tb testing.TB, addr string) *kaClient {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return &kaClient{tb: tb, conn: conn, br: bufio.NewReader(conn)}
}

// upgradeTo is a WebSocket handshake's head to target, with more lines.
func upgradeTo(target string, more ...string) string {
	return rawRequest("GET", target, append(slices.Clone(wsLines), more...), "")
}

// readAll reads what is left of the connection until the server closes it;
// a reset counts as a close.
func (c *kaClient) readAll() (string, error) {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.tb.Fatalf("the server did not close the connection within %v (read %q)", waitTimeout, b)
	}
	return string(b), err
}

// TestFrontServesHandshake: a WebSocket handshake to the engine's path is
// served by the front: 101, the OPEN packet, messages both ways; the
// handler saw the request net/http would have made (Host, header, query,
// RemoteAddr, ConnContext's value, LocalAddrContextKey), ConnState saw
// New, Active, Hijacked, and net/http saw nothing of it.
func TestFrontServesHandshake(t *testing.T) {
	s := startFront(t, frontConfig{})
	const origin = "http://chat.test"
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	conn, resp, err := d.Dial("ws://"+s.addr+kaPath+"?EIO=4&transport=websocket&x=%2F1",
		http.Header{"Origin": {origin}, "Cookie": {"a=1"}, "User-Agent": {"front-test"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Via") != "front" {
		t.Fatalf("handshake: %d, X-Via %q; want 101 from the front", resp.StatusCode, resp.Header.Get("X-Via"))
	}
	c := &wsClient{tb: t, conn: conn}
	open := parseOpen(t, c.readText())
	rec := s.session(t)
	if rec.sess.ID() != open.SID {
		t.Fatalf("OPEN sid %q, session %q", open.SID, rec.sess.ID())
	}
	c.write("4hello")
	if m := rec.message(t); m.data != "hello" || m.binary {
		t.Errorf("session received %+v, want text hello", m)
	}
	if got := c.readText(); got != "4hello" {
		t.Errorf("echo = %q, want 4hello", got)
	}
	if err := rec.sess.Send(TextMessage([]byte("4down"))); err != nil {
		t.Fatal(err)
	}
	if got := c.readText(); got != "4down" {
		t.Errorf("client received %q, want 4down", got)
	}

	var r reqInfo
	select {
	case r = <-s.reqs:
	case <-time.After(waitTimeout):
		t.Fatal("the handler saw no request")
	}
	local := conn.LocalAddr().String()
	key := r.Header.Get("Sec-Websocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		t.Errorf("Sec-WebSocket-Key %q", key)
	}
	for _, check := range []struct {
		what      string
		got, want any
	}{
		{"Via", r.Via, "front"},
		{"Method", r.Method, http.MethodGet},
		{"Proto", fmt.Sprintf("%s %d %d", r.Proto, r.ProtoMajor, r.ProtoMinor), "HTTP/1.1 1 1"},
		{"Host", r.Host, s.addr},
		{"Header Host", r.Header.Values("Host"), []string(nil)},
		{"Origin", r.Header.Values("Origin"), []string{origin}},
		{"Cookie", r.Header.Values("Cookie"), []string{"a=1"}},
		{"User-Agent", r.Header.Values("User-Agent"), []string{"front-test"}},
		{"Upgrade", r.Header.Values("Upgrade"), []string{"websocket"}},
		{"RequestURI", r.RequestURI, kaPath + "?EIO=4&transport=websocket&x=%2F1"},
		{"URL", r.URL, kaPath + "?EIO=4&transport=websocket&x=%2F1"},
		{"RemoteAddr", r.RemoteAddr, local},
		{"ConnContext value", r.ConnValue, "conn " + local},
		{"LocalAddrContextKey", fmt.Sprint(r.LocalAddr), s.addr},
		{"Body", r.HasBody, true},
		{"ContentLength, Close", fmt.Sprint(r.ContentLength, r.Close), "0 false"},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.want) {
			t.Errorf("request %s = %v, want %v", check.what, check.got, check.want)
		}
	}
	s.states.waitStates(t, "the front's", conn.LocalAddr(), http.StateNew, http.StateActive, http.StateHijacked)
	if st := s.httpStates.of(conn.LocalAddr()); st != nil {
		t.Errorf("net/http saw the connection: %v", st)
	}
	s.checkCounts(t, 1, 0)
}

// TestFrontRequestLikeNetHTTP: for the same handshake bytes, the handler
// gets from the front the request it gets from net/http (but the
// connection's addresses).
func TestFrontRequestLikeNetHTTP(t *testing.T) {
	seen := make(chan reqInfo, 1)
	capture := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- captureReq(r)
		http.Error(w, "captured", http.StatusForbidden)
	})
	s := startFront(t, frontConfig{custom: capture})
	ref := httpServer(t, s.mux)
	// retarget moves a head of upgradeCases to /custom/capture, its query kept.
	retarget := func(head string) string {
		line, rest, _ := strings.Cut(head, "\r\n")
		target := strings.TrimSuffix(strings.TrimPrefix(line, "GET "), " HTTP/1.1")
		_, query, _ := strings.Cut(target, "?")
		return "GET /custom/capture?" + query + " HTTP/1.1\r\n" + rest
	}
	var heads []struct{ name, head string }
	for _, tc := range upgradeCases {
		if tc.ok {
			heads = append(heads, struct{ name, head string }{tc.name, retarget(tc.head)})
		}
	}
	heads = append(heads, struct{ name, head string }{"Pragma without Cache-Control", retarget(wsHead("Pragma: no-cache"))})
	served := uint64(0)
	for _, tc := range heads {
		t.Run(tc.name, func(t *testing.T) {
			get := func(addr string) reqInfo {
				c := dialRaw(t, addr)
				r := c.roundTrip(tc.head)
				if r.status != http.StatusForbidden {
					t.Fatalf("%d %q, want 403", r.status, r.body)
				}
				select {
				case ri := <-seen:
					if ri.RemoteAddr != c.conn.LocalAddr().String() {
						t.Errorf("RemoteAddr %q, want %q", ri.RemoteAddr, c.conn.LocalAddr())
					}
					return ri
				case <-time.After(waitTimeout):
					t.Fatal("the handler saw no request")
					return reqInfo{}
				}
			}
			want, got := get(ref), get(s.addr)
			served++
			if got.Via != "front" || want.Via != "net/http" {
				t.Fatalf("served by %s and %s, want front and net/http", got.Via, want.Via)
			}
			if d := sameReq(got, want); d != "" {
				t.Errorf("the front's request differs from net/http's: %s", d)
			}
		})
	}
	s.checkCounts(t, served, 0)
}

// httpServer serves h with a plain http.Server on a loopback listener and
// returns its address: the reference of what net/http does.
func httpServer(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h, MaxHeaderBytes: 4096, ErrorLog: log.New(testlog.Writer(tb), "ref http: ", 0),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, frontCtxKey{}, "conn "+c.RemoteAddr().String())
		}}
	go func() { _ = hs.Serve(ln) }()
	tb.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// TestFrontGivesToNetHTTP: connections whose first request is not a
// WebSocket handshake to the front's paths are given to net/http, with
// what was read of them (a body that came with its head, a pipelined
// request), and served by it on for as long as they live.
func TestFrontGivesToNetHTTP(t *testing.T) {
	s := startFront(t, frontConfig{})
	type want struct {
		status int
		body   string // a prefix of the body
	}
	tests := []struct {
		name  string
		sends []string // each written once the answers to the one before were read
		wants [][]want // the answers to each
	}{
		{"GET /other", []string{rawRequest("GET", "/other", nil, "")}, [][]want{{{200, "other"}}}},
		{"polling handshake", []string{rawRequest("GET", kaPath+"?EIO=4&transport=polling", nil, "")}, [][]want{{{200, "0{"}}}},
		{"POST with its body", []string{rawRequest("POST", "/echo", []string{"Content-Length: 10"}, "hello body")}, [][]want{{{200, "hello body"}}}},
		{"two pipelined", []string{rawRequest("GET", "/other", nil, "") + rawRequest("POST", "/echo", []string{"Content-Length: 3"}, "abc")},
			[][]want{{{200, "other"}, {200, "abc"}}}},
		{"kept alive", []string{rawRequest("GET", "/other", nil, ""), upgradeTo("/elsewhere/")},
			[][]want{{{200, "other"}}, {{200, "elsewhere net/http"}}}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			for j, raw := range tt.sends {
				c.send(raw)
				for k, w := range tt.wants[j] {
					r := c.answer()
					if r.status != w.status || !strings.HasPrefix(r.body, w.body) || r.header.Get("X-Via") != "net/http" {
						t.Errorf("request %d.%d: %d %q via %q, want %d %q… via net/http", j, k, r.status, r.body, r.header.Get("X-Via"), w.status, w.body)
					}
				}
			}
			s.checkCounts(t, 0, uint64(i+1))
			st := s.httpStates.of(c.conn.LocalAddr())
			if len(st) < 2 || st[0] != http.StateNew || st[1] != http.StateActive {
				t.Errorf("net/http's ConnState of the connection: %v, want StateNew, StateActive…", st)
			}
			if st := s.states.of(c.conn.LocalAddr()); slices.Contains(st, http.StateActive) || slices.Contains(st, http.StateHijacked) {
				t.Errorf("the front's ConnState of a connection it gave: %v", st)
			}
		})
	}
}

// TestFrontRefusal: a handshake the handler answers without hijacking
// gets that answer as a complete HTTP/1.1 response (status, headers,
// Content-Length, Connection: close), then the connection ends.
func TestFrontRefusal(t *testing.T) {
	refuse := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Why", "not you")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "forbidden\n")
		_, _ = io.WriteString(w, "go away\n")
	})
	s := startFront(t, frontConfig{custom: refuse})
	tests := []struct {
		name, head, after string
		status            int
		body, header      string // body prefix; a header line of the answer
	}{
		{"handler's 403", upgradeTo("/custom/refuse"), "", 403, "forbidden\ngo away\n", "X-Why: not you"},
		{"engine's 400", upgradeTo(kaPath + "?EIO=9&transport=websocket"), "", 400, `{"code":`, "X-Via: front"},
		{"engine's 400 to a bad key", rawRequest("GET", kaPath+"?EIO=4&transport=websocket", []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: x", "Sec-WebSocket-Version: 13"}, ""), "", 400, `{"code":`, "Content-Type: application/json"},
		// The client had sent more than the front read of it: the answer
		// must still arrive whole, and the connection end with a FIN (as
		// net/http's lingering close does), not a reset.
		{"handler's 403, data after the head", upgradeTo("/custom/refuse"), strings.Repeat("x", 256<<10), 403, "forbidden\ngo away\n", "X-Why: not you"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.send(tt.head)
			if tt.after != "" {
				go func() { // the server stops reading: this may block until it closes
					_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
					_, _ = io.WriteString(c.conn, tt.after)
				}()
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("reading the %d answer's body: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.status || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 || !strings.HasPrefix(string(body), tt.body) {
				t.Errorf("answer %s %q, want HTTP/1.1 %d %q…", resp.Status, body, tt.status, tt.body)
			}
			if resp.ContentLength != int64(len(body)) || resp.Header.Get("Content-Length") == "" && resp.ContentLength < 0 {
				t.Errorf("Content-Length %d, body of %d bytes", resp.ContentLength, len(body))
			}
			if !resp.Close {
				t.Errorf("no Connection: close in %v", resp.Header)
			}
			name, value, _ := strings.Cut(tt.header, ": ")
			if got := resp.Header.Get(name); got != value {
				t.Errorf("%s: %q, want %q", name, got, value)
			}
			if rest, err := c.readAll(); rest != "" || err != nil {
				t.Errorf("after the answer: %q, %v; want EOF", rest, err)
			}
			s.states.waitStates(t, "the front's", c.conn.LocalAddr(), http.StateNew, http.StateActive, http.StateClosed)
			s.checkCounts(t, uint64(i+1), 0)
		})
	}
}

// TestFrontHijackReadsEarlyBytes: what a client sends right after its head,
// before it has the 101 (read by the front with the head, or still in the
// socket), is what the hijacker reads first, in order, through the
// bufio.Reader Hijack returns or the connection.
func TestFrontHijackReadsEarlyBytes(t *testing.T) {
	hijack := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(waitTimeout))
		_, _ = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\nX-Via: "+via(r)+"\r\n\r\n")
		rd := brw.Reader
		if r.URL.Query().Get("via") == "conn" {
			if n := brw.Reader.Buffered(); n > 0 {
				_, _ = io.WriteString(nc, "bufio.Reader has bytes already\n")
				return
			}
			rd = bufio.NewReader(nc)
		}
		for range 2 {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			_, _ = fmt.Fprintf(nc, "got %d %.12s\n", len(line), strings.TrimSuffix(line, "\n"))
		}
	})
	s := startFront(t, frontConfig{custom: hijack})
	t.Run("engine", func(t *testing.T) {
		// A frame sent with the head reaches the session.
		c := dialRaw(t, s.addr)
		key := "dGhlIHNhbXBsZSBub25jZQ=="
		c.send(upgradeTo(kaPath+"?EIO=4&transport=websocket") + string(masked(opText, "4early")))
		_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(key) {
			t.Fatalf("handshake: %v %v", resp, err)
		}
		rec := s.session(t)
		if m := rec.message(t); m.data != "early" {
			t.Errorf("the session received %q first, want early", m.data)
		}
		s.checkCounts(t, 1, 0)
	})
	big := strings.Repeat("e", 40<<10) + "\n" // more than the front reads with a head
	for _, tt := range []struct{ name, target, early string }{
		{"bufio.Reader", "/custom/hijack", "early\n"},
		{"conn", "/custom/hijack?via=conn", "early\n"},
		{"bufio.Reader, more than a read", "/custom/hijack", big},
		{"conn, more than a read", "/custom/hijack?via=conn", big},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.send(upgradeTo(tt.target) + tt.early)
			_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			resp, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("reading the 101: %v", err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Via") != "front" {
				t.Fatalf("answer %s via %q, want 101 via the front", resp.Status, resp.Header.Get("X-Via"))
			}
			c.send("late\n")
			var lines []string
			for range 2 {
				line, err := c.br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading the echoes: %v (read %q)", err, lines)
				}
				lines = append(lines, line)
			}
			want := []string{fmt.Sprintf("got %d %.12s\n", len(tt.early), strings.TrimSuffix(tt.early, "\n")), "got 5 late\n"}
			if !slices.Equal(lines, want) {
				t.Errorf("the hijacker read %q, want %q", lines, want)
			}
		})
	}
}

// TestFrontHeadsForNetHTTP: heads the front does not take (too long, bare
// LFs, a handshake to another path, an escaped path) go to net/http, which
// answers them as it answers them on its own listener.
func TestFrontHeadsForNetHTTP(t *testing.T) {
	viaHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Via", via(r))
		_, _ = io.WriteString(w, "custom "+r.URL.Path+" "+via(r))
	})
	s := startFront(t, frontConfig{custom: viaHandler, maxHeaderBytes: 4096})
	ref := httpServer(t, s.mux) // MaxHeaderBytes 4096 too
	tests := []struct {
		name, head string
		status     int
	}{
		// net/http reads up to MaxHeaderBytes + 4096 before it answers 431.
		{"far over MaxHeaderBytes", upgradeTo("/custom/x", "X-Pad: "+strings.Repeat("p", 12<<10)), http.StatusRequestHeaderFieldsTooLarge},
		{"just over MaxHeaderBytes", upgradeTo("/custom/x", "X-Pad: "+strings.Repeat("p", 4096)), http.StatusOK},
		{"bare LF", "GET /custom/x HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n", 0},
		{"bare LF in one line", "GET /custom/x HTTP/1.1\r\nHost: h\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0},
		{"handshake to another path", upgradeTo("/elsewhere/ws"), http.StatusOK},
		{"escaped path", upgradeTo("/custom/%78"), http.StatusOK},
		{"handshake of HTTP/1.0", strings.Replace(upgradeTo("/custom/x"), "HTTP/1.1", "HTTP/1.0", 1), http.StatusOK},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer := func(addr string) (kaResp, error) {
				c := dialRaw(t, addr)
				c.send(tt.head)
				return c.tryAnswer(waitTimeout)
			}
			want, err := answer(ref)
			if err != nil {
				t.Fatalf("net/http's own answer: %v", err)
			}
			if tt.status != 0 && want.status != tt.status {
				t.Fatalf("net/http answers %d, the case expects %d", want.status, tt.status)
			}
			got, err := answer(s.addr)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if got.status != want.status || got.body != want.body || got.header.Get("X-Via") != want.header.Get("X-Via") {
				t.Errorf("answer %d %q via %q, want net/http's %d %q via %q", got.status, got.body, got.header.Get("X-Via"),
					want.status, want.body, want.header.Get("X-Via"))
			}
			s.checkCounts(t, 0, uint64(i+1))
		})
	}
}

// TestFrontHandlerPanics: a handler that panics on a handshake has its
// connection closed (and the panic logged, but http.ErrAbortHandler's);
// ConnState ends with StateClosed; the front serves the next handshakes.
func TestFrontHandlerPanics(t *testing.T) {
	panics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("abort") {
			panic(http.ErrAbortHandler)
		}
		panic("boom in the handler")
	})
	var logged testlog.Buffer
	s := startFront(t, frontConfig{custom: panics, log: slog.New(slog.NewTextHandler(&logged, nil))})
	for i, target := range []string{"/custom/panic", "/custom/panic?abort", "/custom/panic"} {
		c := dialRaw(t, s.addr)
		c.send(upgradeTo(target))
		if rest, _ := c.readAll(); rest != "" {
			t.Errorf("%s: read %q, want the connection closed without an answer", target, rest)
		}
		s.states.waitStates(t, "the front's", c.conn.LocalAddr(), http.StateNew, http.StateActive, http.StateClosed)
		s.checkCounts(t, uint64(i+1), 0)
	}
	if n := strings.Count(logged.String(), "boom in the handler"); n != 2 {
		t.Errorf("the panic logged %d times, want 2 (not ErrAbortHandler's): %s", n, logged.String())
	}
	// The front still serves.
	ws, _, err := wsDial(t, "ws://"+s.addr+kaPath+"?EIO=4&transport=websocket")
	if err != nil {
		t.Fatalf("dial after the panics: %v", err)
	}
	parseOpen(t, ws.readText())
	s.session(t)
	s.checkCounts(t, 4, 0)
}

// TestFrontSweep checks HeaderTimeout in a synctest bubble, with the
// sockets left out (a pipe stands for the listener's connection): a
// connection whose head has not arrived is closed (ConnState StateClosed,
// forgotten) no sooner than HeaderTimeout after its start, and no later
// than a tenth of it after that, whenever in the sweep's period it came; a
// connection that left the front (served) before is not closed.
func TestFrontSweep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ht = 10 * time.Second
		var mu sync.Mutex
		states := map[net.Conn][]http.ConnState{} // the pipes' addresses are all "pipe"
		f := &Front{HeaderTimeout: ht, conns: make(map[*frontConn]struct{}), ConnState: func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			states[c] = append(states[c], st)
		}}
		stop := make(chan struct{})
		defer close(stop)
		go f.sweep(stop)
		type conn struct {
			fr     *frontConn
			start  time.Duration
			client net.Conn
			ended  chan struct{} // closed when the server end is
			left   bool
		}
		t0 := time.Now()
		var conns []*conn
		for i, at := range []time.Duration{0, ht / 20, ht/10 - time.Millisecond, ht / 10, 3*ht/10 + 7*time.Millisecond, ht / 2} {
			time.Sleep(at - time.Since(t0))
			a, b := net.Pipe()
			c := &conn{start: time.Since(t0), client: b, ended: make(chan struct{}), left: i == 5}
			c.fr = &frontConn{f: f, fc: &fdConn{fd: -1}, nc: a, deadline: monoNow() + int64(ht)}
			f.mu.Lock()
			f.conns[c.fr] = struct{}{}
			f.mu.Unlock()
			go func() {
				_, _ = b.Read(make([]byte, 1))
				close(c.ended)
			}()
			conns = append(conns, c)
		}
		// The last one is served just before its deadline.
		time.Sleep(conns[5].start + ht - time.Millisecond - time.Since(t0))
		if !conns[5].fr.leave(false) {
			t.Fatal("leave: the connection was closed before its deadline")
		}
		for step := time.Duration(0); step <= 3*ht; step += ht / 100 {
			time.Sleep(step - time.Since(t0))
			synctest.Wait()
			now := time.Since(t0)
			for i, c := range conns {
				ended := false
				select {
				case <-c.ended:
					ended = true
				default:
				}
				switch {
				case c.left && ended:
					t.Fatalf("conn %d: closed at %v after it was served", i, now)
				case c.left:
				case ended && now < c.start+ht:
					t.Fatalf("conn %d (from %v): closed at %v, before its HeaderTimeout", i, c.start, now)
				case !ended && now >= c.start+ht+ht/10:
					t.Fatalf("conn %d (from %v): still open at %v, past HeaderTimeout + HeaderTimeout/10", i, c.start, now)
				}
			}
		}
		for i, c := range conns {
			want := []http.ConnState{http.StateNew, http.StateClosed} // closed before any request: as net/http tells it
			if c.left {
				want = nil
				_ = c.fr.nc.Close()
			}
			mu.Lock()
			got := states[c.fr.nc]
			mu.Unlock()
			if !slices.Equal(got, want) {
				t.Errorf("conn %d: ConnState %v, want %v", i, got, want)
			}
		}
		f.mu.Lock()
		if n := len(f.conns); n != 0 {
			t.Errorf("%d connections still waiting after the sweep", n)
		}
		f.mu.Unlock()
	})
}

// TestFrontHeaderTimeout: the deadline wired to a real socket: a client
// that sends half a head is closed by the server, not before HeaderTimeout.
func TestFrontHeaderTimeout(t *testing.T) {
	const ht = 100 * time.Millisecond
	s := startFront(t, frontConfig{headerTimeout: ht})
	start := time.Now() // before the server's accept
	c := dialRaw(t, s.addr)
	head := upgradeTo(kaPath + "?EIO=4&transport=websocket")
	c.send(head[:len(head)/2])
	deadline := time.Now().Add(5 * time.Second)
	_ = c.conn.SetReadDeadline(deadline)
	b, err := io.ReadAll(c.br)
	if time.Now().After(deadline) {
		t.Fatalf("not closed within 5 s (HeaderTimeout %v): %v", ht, err)
	}
	if len(b) > 0 {
		t.Errorf("read %q before the close, want nothing", b)
	}
	if d := time.Since(start); d < ht {
		t.Errorf("closed %v after the dial, before HeaderTimeout %v", d, ht)
	}
	s.states.waitStates(t, "the front's", c.conn.LocalAddr(), http.StateNew, http.StateClosed)
	if n := s.waiting(); n != 0 {
		t.Errorf("%d connections still waiting", n)
	}
	s.checkCounts(t, 0, 0)
}

// inQueue is the number of bytes in the receive queue of c's socket.
func inQueue(tb testing.TB, c net.Conn) int {
	tb.Helper()
	var n int
	var ioErr error
	if ac, ok := c.(*acceptedConn); ok {
		ac.fdMu.RLock()
		ac.mu.Lock()
		fd := ac.fd
		ac.mu.Unlock()
		n, ioErr = ioctlInt(fd, syscall.TIOCINQ)
		ac.fdMu.RUnlock()
	} else {
		sc, err := c.(*net.TCPConn).SyscallConn()
		if err != nil {
			tb.Fatal(err)
		}
		if err := sc.Control(func(fd uintptr) {
			n, ioErr = ioctlInt(int(fd), syscall.TIOCINQ)
		}); err != nil {
			tb.Fatal(err)
		}
	}
	if ioErr != nil {
		tb.Fatal(ioErr)
	}
	return n
}

func ioctlInt(fd int, req uintptr) (int, error) {
	var v int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&v))); errno != 0 {
		return 0, errno
	}
	return int(v), nil
}

// frontNetConns are the listener's connections of those the front holds.
func (s *frontServer) frontNetConns() []net.Conn {
	s.front.mu.Lock()
	defer s.front.mu.Unlock()
	var ncs []net.Conn
	for fr := range s.front.conns {
		ncs = append(ncs, fr.nc)
	}
	return ncs
}

// TestFrontHeapBound: connections that each send a head just under
// MaxHeaderBytes, without its end, make the server hold about that much
// each, no more; clients that send far more than MaxHeaderBytes without a
// blank line are given to net/http holding at most MaxHeaderBytes + 1 of
// it, and net/http answers them 431.
func TestFrontHeapBound(t *testing.T) {
	// What a connection may cost: its head (in a slice append grew), the
	// front's structs and the socket's.
	const mhb = 16 << 10
	const slack = mhb + 8<<10
	t.Run("far over the limit", func(t *testing.T) {
		const conns = 20
		given := make(chan net.Conn, conns)
		s := startFront(t, frontConfig{maxHeaderBytes: mhb, log: discardLogger(), serveHandBack: func(hb *HandBack) {
			go func() { // hold the connections given, unread
				for {
					c, err := hb.Accept()
					if err != nil {
						return
					}
					given <- c
				}
			}()
		}})
		// One allocation, made before the heap is read.
		flood := bytes.Repeat([]byte("p"), 1<<20)
		copy(flood, "GET "+kaPath+"?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\nX-Pad: ")
		clients := make([]*kaClient, conns)
		for i := range clients {
			clients[i] = dialRaw(t, s.addr)
		}
		waitFor(t, "every connection waiting on the front", func() bool { return s.waiting() == conns })
		before := settledHeap()
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Go(func() { // blocks once the socket buffers are full
				_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
				_, _ = c.conn.Write(flood)
			})
		}
		var held []net.Conn
		for range conns {
			select {
			case c := <-given:
				held = append(held, c)
			case <-time.After(waitTimeout):
				t.Fatalf("%d of %d connections given to net/http", len(held), conns)
			}
		}
		after := settledHeap()
		runtime.KeepAlive(flood) // the writes may be over: the kernel's buffers took it all
		per := growth(before, after) / conns
		t.Logf("%d connections sending 1 MiB: live heap %+.1f KiB (%d bytes each)", conns, float64(growth(before, after))/1024, per)
		if per > slack {
			t.Errorf("each connection holds %d bytes, want < MaxHeaderBytes + 8 KiB = %d", per, slack)
		}
		for _, c := range held {
			rc, ok := c.(*returnedConn)
			if !ok {
				t.Fatalf("given a %T", c)
			}
			rc.mu.Lock()
			if n := len(rc.pre); n > mhb+1 {
				t.Errorf("given with %d bytes read, more than MaxHeaderBytes + 1", n)
			}
			rc.mu.Unlock()
		}
		s.checkCounts(t, 0, conns)
		// net/http answers them.
		go func() { _ = s.hs.Serve(&connsListener{conns: held, addr: s.ln.Addr(), done: make(chan struct{})}) }()
		for i, c := range clients {
			_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			resp, err := http.ReadResponse(c.br, nil) // the head only: TestFrontHeadsForNetHTTP checks how it ends
			if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("client %d: %v %v, want 431", i, resp, err)
			}
			_ = c.conn.Close()
		}
		wg.Wait()
	})
	t.Run("heads just under the limit", func(t *testing.T) {
		const conns = 200
		s := startFront(t, frontConfig{maxHeaderBytes: mhb, log: discardLogger()})
		part := upgradeTo(kaPath+"?EIO=4&transport=websocket", "X-Pad: "+strings.Repeat("p", mhb))
		part = part[:mhb-200]
		clients := make([]*kaClient, conns)
		for i := range clients {
			clients[i] = dialRaw(t, s.addr)
		}
		waitFor(t, "every connection waiting on the front", func() bool { return s.waiting() == conns })
		before := settledHeap()
		for _, c := range clients {
			c.send(part)
		}
		ncs := s.frontNetConns()
		waitFor(t, "every connection's part read by the front", func() bool {
			for _, nc := range ncs {
				if inQueue(t, nc) != 0 {
					return false
				}
			}
			return true
		})
		after := settledHeap()
		per := growth(before, after) / conns
		t.Logf("%d connections with %d bytes of a head: live heap %+.1f KiB (%d bytes each)", conns, len(part), float64(growth(before, after))/1024, per)
		if per > slack {
			t.Errorf("each connection holds %d bytes, want < MaxHeaderBytes + 8 KiB = %d", per, slack)
		}
		if n := s.waiting(); n != conns {
			t.Errorf("%d connections waiting, want %d", n, conns)
		}
		s.checkCounts(t, 0, 0)
		runtime.KeepAlive(clients)
	})
}

// connsListener gives conns to Accept, then blocks until closed.
type connsListener struct {
	mu    sync.Mutex
	conns []net.Conn
	addr  net.Addr
	done  chan struct{}
	once  sync.Once
}

func (l *connsListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.conns) > 0 {
		c := l.conns[0]
		l.conns = l.conns[1:]
		l.mu.Unlock()
		return c, nil
	}
	l.mu.Unlock()
	<-l.done
	return nil, net.ErrClosed
}

func (l *connsListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *connsListener) Addr() net.Addr { return l.addr }

// TestFrontCloseListener: when the listener is closed, Serve returns its
// error and closes the connections still waiting for their head; the
// WebSockets it served live on.
func TestFrontCloseListener(t *testing.T) {
	s := startFront(t, frontConfig{})
	ws, _, err := wsDial(t, "ws://"+s.addr+kaPath+"?EIO=4&transport=websocket")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	parseOpen(t, ws.readText())
	rec := s.session(t)
	var waiting []*kaClient
	for range 3 {
		c := dialRaw(t, s.addr)
		c.send("GET /other HTTP/1.1\r\nHo")
		waiting = append(waiting, c)
	}
	waitFor(t, "3 connections waiting for their head", func() bool { return s.waiting() == 3 })
	if err := s.stop(t); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve returned %v, want net.ErrClosed", err)
	}
	for i, c := range waiting {
		if rest, _ := c.readAll(); rest != "" {
			t.Errorf("waiting connection %d: read %q, want the close", i, rest)
		}
		s.states.waitStates(t, "the front's", c.conn.LocalAddr(), http.StateNew, http.StateClosed)
	}
	if n := s.waiting(); n != 0 {
		t.Errorf("%d connections still waiting", n)
	}
	ws.write("4still here")
	if m := rec.message(t); m.data != "still here" {
		t.Errorf("session received %q", m.data)
	}
	if got := ws.readText(); got != "4still here" {
		t.Errorf("echo %q", got)
	}
	s.checkCounts(t, 1, 0)
}

// TestFrontGoListener runs the front's tests on connections of Go's own
// listener, whose sockets the front copies into the epoll set (a listener
// that is not an AcceptListener's, or a connection that has become one
// of Go's poller); the tests above use an AcceptListener, as the server
// does.
func TestFrontGoListener(t *testing.T) {
	frontGoListener = true
	defer func() { frontGoListener = false }()
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"ServesHandshake", TestFrontServesHandshake},
		{"GivesToNetHTTP", TestFrontGivesToNetHTTP},
		{"Refusal", TestFrontRefusal},
		{"HijackReadsEarlyBytes", TestFrontHijackReadsEarlyBytes},
		{"HeadsForNetHTTP", TestFrontHeadsForNetHTTP},
		{"HandlerPanics", TestFrontHandlerPanics},
		{"HeaderTimeout", TestFrontHeaderTimeout},
		{"HeapBound", TestFrontHeapBound},
		{"CloseListener", TestFrontCloseListener},
	} {
		t.Run(tt.name, tt.test)
	}
}
