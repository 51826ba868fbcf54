package engineio

// Tests of the keep-alive fast path (Options.KeepAlive, keepalive_linux.go)
// over raw TCP connections: the test writes each request by hand, so that
// it decides what is kept alive and what is pipelined, and reads the
// answers with http.ReadResponse. The http.Server in front of the engine
// serves its listener and the HandBack, as an application would; an outer
// handler counts the requests net/http serves, which tells an answer of the
// fast path (the count does not move) from one of net/http.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
)

const (
	kaHost = "chat.test"
	kaPath = "/engine.io/"
)

// kaServer is an engine with the keep-alive fast path behind an
// http.Server that serves both its listener and the HandBack.
type kaServer struct {
	*Server
	sessionFeed
	addr  string
	outer atomic.Int64 // requests that reached the engine through net/http
	other atomic.Int64 // requests /other served
}

// kaConfig is how a test's kaServer is set up.
type kaConfig struct {
	opts           Options
	ka             KeepAlive // HandBack is set by startKA
	cors           bool      // the outer handler adds CORS headers for the request's Origin
	maxHeaderBytes int       // http.Server's
	listener       func(net.Listener) net.Listener
}

func startKA(tb testing.TB, cfg kaConfig) *kaServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	hb := NewHandBack(ln.Addr())
	if cfg.listener != nil {
		ln = cfg.listener(ln)
	}
	ka := cfg.ka
	ka.HandBack = hb
	opts := cfg.opts
	opts.KeepAlive = &ka
	if opts.Logger == nil {
		opts.Logger = testLogger(tb)
	}
	if opts.CloseTimeout == 0 {
		opts.CloseTimeout = 300 * time.Millisecond
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Hour // no PING in the answers the tests read
	}
	s := &kaServer{addr: ln.Addr().String(), sessionFeed: newSessionFeed()}
	s.Server = NewServer(opts, func(sess *Session) SessionHandler {
		r := newRecorder(sess, false)
		s.opened <- r
		return r
	})
	mux := http.NewServeMux()
	mux.Handle(kaPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.outer.Add(1)
		if o := r.Header.Get("Origin"); cfg.cors && o != "" {
			w.Header().Set("Access-Control-Allow-Origin", o)
			w.Header().Set("Access-Control-Allow-Credentials", "true")
		}
		s.Server.ServeHTTP(w, r)
	}))
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		s.other.Add(1)
		_, _ = io.WriteString(w, "other")
	})
	hs := &http.Server{Handler: mux, MaxHeaderBytes: cfg.maxHeaderBytes, ErrorLog: log.New(testlog.Writer(tb), "http: ", 0)}
	go func() { _ = hs.Serve(ln) }()
	go func() { _ = hs.Serve(hb) }()
	// The fast path takes nothing over until the HandBack is served.
	waitFor(tb, "the HandBack served", hb.open)
	tb.Cleanup(func() {
		s.Server.Close()
		waitFor(tb, "the sessions and keep-alive connections gone after Close", func() bool {
			return s.Server.Len() == 0 && s.PollConns() == 0
		})
		_ = hs.Close()
		_ = hb.Close()
	})
	return s
}

// waitPollConns waits until n connections are on the fast path.
func (s *kaServer) waitPollConns(tb testing.TB, n int) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("PollConns() == %d (is %d)", n, s.PollConns()), func() bool { return s.PollConns() == n })
}

// countPollConns counts the fast path's connections for which f holds.
func (s *kaServer) countPollConns(f func(pc *pollConn) bool) int {
	p := &s.Server.ka
	p.mu.Lock()
	all := make([]*pollConn, 0, len(p.m))
	for pc := range p.m {
		all = append(all, pc)
	}
	p.mu.Unlock()
	n := 0
	for _, pc := range all {
		pc.mu.Lock()
		if f(pc) {
			n++
		}
		pc.mu.Unlock()
	}
	return n
}

// takenOver reports whether the fast path serves c's connection.
func (s *kaServer) takenOver(c *kaClient) bool {
	local := c.conn.LocalAddr().String()
	return s.countPollConns(func(pc *pollConn) bool { return pc.nc.RemoteAddr().String() == local }) > 0
}

// waitTakenOver waits until the fast path serves c's connection.
func (s *kaServer) waitTakenOver(tb testing.TB, c *kaClient) {
	tb.Helper()
	waitFor(tb, "the connection taken over", func() bool { return s.takenOver(c) })
}

// waitingOnFastPath reports whether the session's pending GET is one the
// fast path serves.
func waitingOnFastPath(sess *Session) bool {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.pl == nil {
		return false
	}
	_, ok := sess.pl.poll.(*pollConn)
	return ok
}

// kaClient is a raw HTTP/1.1 client over one TCP connection.
type kaClient struct {
	tb   testing.TB
	s    *kaServer
	conn net.Conn
	br   *bufio.Reader
	eio  int
	sid  string
	rec  *recorder
	hdr  []string // header lines added to the session's requests (Origin)
	t    int
}

func (s *kaServer) dial(tb testing.TB) *kaClient {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", s.addr, waitTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return &kaClient{tb: tb, s: s, conn: conn, br: bufio.NewReader(conn), eio: 4}
}

// kaResp is an answer the client read.
type kaResp struct {
	status int
	header http.Header
	body   string
	close  bool // Connection: close (ReadResponse takes it out of header)
}

// rawRequest is a request head with a Host (unless hdr has one) and hdr's
// lines, then body.
func rawRequest(method, target string, hdr []string, body string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\n")
	if !slices.ContainsFunc(hdr, func(h string) bool { return strings.HasPrefix(strings.ToLower(h), "host:") }) {
		b.WriteString("Host: " + kaHost + "\r\n")
	}
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return b.String()
}

// target is the session's polling URL.
func (c *kaClient) target() string {
	c.t++
	return fmt.Sprintf("%s?EIO=%d&transport=polling&sid=%s&t=%d", kaPath, c.eio, c.sid, c.t)
}

// getReq is a GET of the session with hdr's lines.
func (c *kaClient) getReq(hdr ...string) string {
	return rawRequest("GET", c.target(), append(slices.Clone(c.hdr), hdr...), "")
}

// postReq is a POST of body to the session with hdr's lines.
func (c *kaClient) postReq(body string, hdr ...string) string {
	h := append(slices.Clone(c.hdr), "Content-Type: text/plain;charset=UTF-8", "Content-Length: "+strconv.Itoa(len(body)))
	return rawRequest("POST", c.target(), append(h, hdr...), body)
}

func (c *kaClient) send(raw string) {
	c.tb.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// answer reads the next answer, within waitTimeout.
func (c *kaClient) answer() kaResp {
	c.tb.Helper()
	r, err := c.tryAnswer(waitTimeout)
	if err != nil {
		c.tb.Fatalf("reading an answer: %v", err)
	}
	return r
}

func (c *kaClient) tryAnswer(within time.Duration) (kaResp, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return kaResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return kaResp{}, fmt.Errorf("%d answer's body: %w", resp.StatusCode, err)
	}
	return kaResp{resp.StatusCode, resp.Header, string(b), resp.Close}, nil
}

func (c *kaClient) roundTrip(raw string) kaResp {
	c.tb.Helper()
	c.send(raw)
	return c.answer()
}

// handshake opens a session over the connection (EIO=c.eio), with hdr's
// lines, and makes it the client's.
func (c *kaClient) handshake(hdr ...string) {
	c.tb.Helper()
	c.hdr = hdr
	r := c.roundTrip(rawRequest("GET", fmt.Sprintf("%s?EIO=%d&transport=polling&t=0", kaPath, c.eio), hdr, ""))
	if r.status != http.StatusOK {
		c.tb.Fatalf("handshake: %d %q", r.status, r.body)
	}
	open := r.body
	if c.eio == 3 {
		packets, err := decodePayloadV3Text([]byte(r.body))
		if err != nil || len(packets) != 1 {
			c.tb.Fatalf("v3 handshake payload %q: %v", r.body, err)
		}
		open = string(packets[0].typ) + string(packets[0].data)
	}
	c.sid = parseOpen(c.tb, open).SID
	c.rec = c.s.session(c.tb)
}

// join makes c a client of other's session (another connection).
func (c *kaClient) join(other *kaClient) {
	c.eio, c.sid, c.rec, c.hdr = other.eio, other.sid, other.rec, other.hdr
}

// post sends body and expects "ok".
func (c *kaClient) post(body string) kaResp {
	c.tb.Helper()
	r := c.roundTrip(c.postReq(body))
	if r.status != http.StatusOK || r.body != "ok" {
		c.tb.Fatalf("POST %.40q: %d %q, want 200 ok", body, r.status, r.body)
	}
	return r
}

// get polls once and expects 200.
func (c *kaClient) get(hdr ...string) kaResp {
	c.tb.Helper()
	r := c.roundTrip(c.getReq(hdr...))
	if r.status != http.StatusOK {
		c.tb.Fatalf("GET: %d %q", r.status, r.body)
	}
	return r
}

// readEOF waits for the server to close the connection and returns how
// long after start it did.
func (c *kaClient) readEOF(start time.Time) time.Duration {
	c.tb.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := io.ReadAll(c.br)
	if err != nil {
		var ne net.Error
		if !errors.As(err, &ne) || ne.Timeout() {
			c.tb.Fatalf("waiting for the server to close: %v (read %q)", err, b)
		}
		// ECONNRESET: closed too
	}
	return time.Since(start)
}

func (c *kaClient) queue(msgs ...string) {
	c.tb.Helper()
	for _, m := range msgs {
		if err := c.rec.sess.Send(TextMessage([]byte(m))); err != nil {
			c.tb.Fatal(err)
		}
	}
}

// expectMessages waits for the session to receive msgs, in order.
func (c *kaClient) expectMessages(msgs ...string) {
	c.tb.Helper()
	for _, want := range msgs {
		if got := c.rec.message(c.tb); got.data != want || got.binary {
			c.tb.Fatalf("received %q (binary %v), want %q", got.data, got.binary, want)
		}
	}
}

// sameHeaders compares two answers' headers but for skip.
func sameHeaders(a, b http.Header, skip ...string) string {
	var diff []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, h := range []http.Header{a, b} {
			for k := range h {
				if !seen[k] && !slices.Contains(skip, k) {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}) {
		if !slices.Equal(a[k], b[k]) {
			diff = append(diff, fmt.Sprintf("%s: %q vs %q", k, a[k], b[k]))
		}
	}
	return strings.Join(diff, "; ")
}

// TestKeepAliveTakeover: once net/http has served a session's request on a
// keep-alive connection, the fast path serves the connection's later GETs
// and POSTs, with net/http's answers, a waiting GET woken by a Send, and
// every message delivered once, in order, both ways.
func TestKeepAliveTakeover(t *testing.T) {
	s := startKA(t, kaConfig{})
	c := s.dial(t)
	c.handshake()
	s.waitPollConns(t, 1)
	if n := s.outer.Load(); n != 1 {
		t.Fatalf("net/http served %d requests, want the handshake", n)
	}
	// net/http's answers, on a connection that closes after each.
	ref := s.dial(t)
	ref.join(c)

	// POST
	r := c.post("4a\x1e4b")
	if n := s.outer.Load(); n != 1 {
		t.Errorf("the POST went through net/http (%d requests)", n)
	}
	want := ref.roundTrip(ref.postReq("4c", "Connection: close"))
	if want.status != 200 || want.body != "ok" {
		t.Fatalf("net/http's POST: %d %q", want.status, want.body)
	}
	if d := sameHeaders(r.header, want.header, "Date", "Connection"); d != "" {
		t.Errorf("POST answer's headers differ from net/http's: %s", d)
	}
	if _, err := http.ParseTime(r.header.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", r.header.Get("Date"), err)
	}
	c.expectMessages("a", "b", "c")

	// GET of what is queued
	c.queue("4x", "4y")
	r = c.get()
	ref = s.dial(t)
	ref.join(c)
	ref.queue("4x", "4y")
	want = ref.roundTrip(ref.getReq("Connection: close"))
	if r.body != "4x\x1e4y" || want.body != r.body {
		t.Errorf("GET = %q, net/http's %q, want %q", r.body, want.body, "4x\x1e4y")
	}
	if d := sameHeaders(r.header, want.header, "Date", "Connection"); d != "" {
		t.Errorf("GET answer's headers differ from net/http's: %s", d)
	}
	if r.header.Get("Content-Type") != "text/plain; charset=UTF-8" || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET answer's headers: %v", r.header)
	}
	outer := s.outer.Load()

	// A GET that waits, woken by a Send.
	c.send(c.getReq())
	waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })
	c.queue("4woke")
	if r := c.answer(); r.status != 200 || r.body != "4woke" {
		t.Errorf("woken GET: %d %q, want 4woke", r.status, r.body)
	}

	// 1 000 messages each way: POSTs of 10, and GETs of what a goroutine
	// sends meanwhile.
	const total = 1000
	sent := make(chan error, 1)
	go func() {
		for i := range total {
			if err := c.rec.sess.Send(TextMessage([]byte("4s" + strconv.Itoa(i)))); err != nil {
				sent <- err
				return
			}
			if i%50 == 0 {
				runtime.Gosched()
			}
		}
		sent <- nil
	}()
	received := 0
	for posted := 0; posted < total || received < total; {
		if posted < total {
			var msgs []string
			for range 10 {
				msgs = append(msgs, "4c"+strconv.Itoa(posted))
				posted++
			}
			c.post(strings.Join(msgs, "\x1e"))
		}
		if received < total {
			r := c.get()
			for p := range strings.SplitSeq(r.body, "\x1e") {
				if want := "4s" + strconv.Itoa(received); p != want {
					t.Fatalf("server message %d is %q, want %q", received, p, want)
				}
				received++
			}
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i := range total {
		if got := c.rec.message(t); got.data != "c"+strconv.Itoa(i) {
			t.Fatalf("client message %d is %q", i, got.data)
		}
	}
	if n := s.outer.Load(); n != outer {
		t.Errorf("net/http served %d of the requests on the taken-over connection", n-outer)
	}
	if n := s.PollConns(); n != 1 {
		t.Errorf("PollConns() = %d, want 1", n)
	}
	if c.rec.sess.Closed() {
		t.Errorf("session closed: %+v", c.rec.waitClose(t))
	}
}

// TestKeepAliveOuterHeaders: the headers the outer handler added to the
// first answer are on the fast path's answers; a request with another
// Origin, Host or path goes back through the outer handler.
func TestKeepAliveOuterHeaders(t *testing.T) {
	const origin = "https://a.example"
	s := startKA(t, kaConfig{cors: true})
	tests := []struct {
		name     string
		hdr      []string
		path     string
		handBack bool
		origin   string // the answer's Access-Control-Allow-Origin
	}{
		{"same", []string{"Origin: " + origin}, kaPath, false, origin},
		{"same, header names in another case", []string{"origin: " + origin, "HOST: " + kaHost}, kaPath, false, origin},
		{"another origin", []string{"Origin: https://b.example"}, kaPath, true, "https://b.example"},
		{"no origin", nil, kaPath, true, ""},
		{"another host", []string{"Origin: " + origin, "Host: other.test"}, kaPath, true, origin},
		{"another path", []string{"Origin: " + origin}, kaPath + "x/", true, origin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(t)
			c.handshake("Origin: " + origin)
			s.waitTakenOver(t, c)
			r := c.post("4one")
			if got := r.header.Get("Access-Control-Allow-Origin"); got != origin || r.header.Get("Access-Control-Allow-Credentials") != "true" {
				t.Errorf("fast path's POST answer lacks the CORS headers: %v", r.header)
			}
			c.queue("4q")
			r = c.get()
			if got := r.header.Get("Access-Control-Allow-Origin"); got != origin || r.header.Get("Access-Control-Allow-Credentials") != "true" || r.body != "4q" {
				t.Errorf("fast path's GET answer: %q %v", r.body, r.header)
			}
			outer := s.outer.Load()
			target := strings.Replace(c.target(), kaPath, tt.path, 1)
			r = c.roundTrip(rawRequest("POST", target, append(tt.hdr, "Content-Type: text/plain;charset=UTF-8", "Content-Length: 4"), "4two"))
			if r.status != 200 || r.body != "ok" {
				t.Fatalf("POST: %d %q", r.status, r.body)
			}
			if n := s.outer.Load() - outer; tt.handBack != (n == 1) {
				t.Errorf("POST went through the outer handler %d times, want handed back: %v", n, tt.handBack)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.origin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.origin)
			}
			c.expectMessages("one", "two")
		})
	}
}

// TestKeepAliveHandBack: requests the fast path does not serve go back to
// net/http on the same connection, which goes on serving (and may give the
// connection to the fast path again); pipelined requests are answered in
// order.
func TestKeepAliveHandBack(t *testing.T) {
	s := startKA(t, kaConfig{})

	t.Run("other path", func(t *testing.T) {
		c := s.dial(t)
		c.handshake()
		s.waitPollConns(t, 1)
		if r := c.roundTrip(rawRequest("GET", "/other", nil, "")); r.status != 200 || r.body != "other" || s.other.Load() != 1 {
			t.Fatalf("/other: %d %q (served %d times)", r.status, r.body, s.other.Load())
		}
		waitFor(t, "the connection handed back", func() bool { return !s.takenOver(c) })
		outer := s.outer.Load()
		c.post("4after")
		if s.outer.Load() != outer+1 {
			t.Errorf("the POST after /other was not served by net/http")
		}
		s.waitPollConns(t, 1) // taken over again
		c.queue("4q")
		if r := c.get(); r.body != "4q" {
			t.Errorf("GET = %q", r.body)
		}
		c.post("4fast")
		if s.outer.Load() != outer+1 {
			t.Errorf("net/http served the requests after the second takeover")
		}
		c.expectMessages("after", "fast")
	})

	t.Run("handshake", func(t *testing.T) {
		c := s.dial(t)
		c.handshake()
		first := *c
		s.waitPollConns(t, 1)
		outer := s.outer.Load()
		c.handshake()
		if c.sid == first.sid || s.outer.Load() != outer+1 {
			t.Fatalf("second handshake: sid %q (first %q), %d requests through net/http", c.sid, first.sid, s.outer.Load()-outer)
		}
		s.waitPollConns(t, 1)
		c.post("4second")
		c.expectMessages("second")
		// The first session's requests too: same path, Host and Origin.
		c.join(&first)
		c.post("4first")
		c.expectMessages("first")
		if s.outer.Load() != outer+1 {
			t.Errorf("net/http served the POSTs after the second handshake")
		}
	})

	t.Run("pipelined", func(t *testing.T) {
		for _, fresh := range []bool{false, true} {
			t.Run(fmt.Sprintf("first request to net/http: %v", fresh), func(t *testing.T) {
				c := s.dial(t)
				if fresh {
					h := s.dial(t)
					h.handshake()
					c.join(h)
				} else {
					c.handshake()
					s.waitTakenOver(t, c)
				}
				c.queue("4q1", "4q2")
				c.send(c.getReq() + c.getReq() + c.postReq("4p"))
				if r := c.answer(); r.status != 200 || r.body != "4q1\x1e4q2" {
					t.Fatalf("first GET: %d %q", r.status, r.body)
				}
				waitFor(t, "the second GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })
				c.queue("4q3")
				if r := c.answer(); r.status != 200 || r.body != "4q3" {
					t.Fatalf("second GET: %d %q", r.status, r.body)
				}
				if r := c.answer(); r.status != 200 || r.body != "ok" {
					t.Fatalf("POST: %d %q", r.status, r.body)
				}
				c.expectMessages("p")
			})
		}
	})

	t.Run("pipelined after a hand-back", func(t *testing.T) {
		// More than net/http's read buffer of requests behind the one
		// handed back: net/http serves /other and the first POST, the fast
		// path takes the connection over again with what net/http and the
		// hand-back had read of the rest.
		c := s.dial(t)
		c.handshake()
		s.waitPollConns(t, 1)
		raw := rawRequest("GET", "/other", nil, "")
		var want []string
		for i := range 6 {
			m := fmt.Sprintf("%d:%s", i, strings.Repeat("z", 2500))
			want = append(want, m)
			raw += c.postReq("4" + m)
		}
		c.send(raw)
		if r := c.answer(); r.body != "other" {
			t.Fatalf("/other: %d %q", r.status, r.body)
		}
		for i := range 6 {
			if r, err := c.tryAnswer(3 * time.Second); err != nil || r.status != 200 || r.body != "ok" {
				t.Fatalf("POST %d: %d %q %v", i, r.status, r.body, err)
			}
		}
		c.expectMessages(want...)
		s.waitPollConns(t, 1)
	})
}

// TestKeepAliveHostile: heads and bodies beyond the limits, and heads the
// strict parser does not take, are handed back: net/http answers them as
// it answers them on a connection of its own.
func TestKeepAliveHostile(t *testing.T) {
	const maxHead = 4096
	s := startKA(t, kaConfig{
		opts:           Options{MaxBufferSize: 1000},
		ka:             KeepAlive{MaxHeaderBytes: maxHead, HeaderTimeout: 3 * time.Second},
		maxHeaderBytes: maxHead, // net/http allows 4 KiB more
	})
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) }
	post := func(c *kaClient, hdr []string, body string) string { return rawRequest("POST", c.target(), hdr, body) }
	tests := []struct {
		name    string
		req     func(c *kaClient) string // the request, on the session's URL
		get     bool                     // a GET: a message is queued first
		status  int
		handler bool   // net/http hands it to the handlers (it is not refused before)
		closes  string // the session closes with this reason; "" stays open
	}{
		{"head over net/http's MaxHeaderBytes", func(c *kaClient) string { return c.getReq(pad(2 * maxHead)) }, true, 431, false, ""},
		{"head over MaxHeaderBytes, within net/http's", func(c *kaClient) string { return c.getReq(pad(maxHead + 1000)) }, true, 200, true, ""},
		{"body over MaxBufferSize", func(c *kaClient) string { return c.postReq("4" + strings.Repeat("b", 1000)) }, false, 413, true, "transport error"},
		{"binary body of a v4 session", func(c *kaClient) string {
			return post(c, []string{"Content-Type: application/octet-stream", "Content-Length: 3"}, "4ab")
		}, false, 400, true, "transport error"},
		{"bare LF in a header line", func(c *kaClient) string {
			return "GET " + c.target() + " HTTP/1.1\r\nHost: " + kaHost + "\nAccept: */*\r\n\r\n"
		}, true, 200, true, ""},
		{"bare LFs only", func(c *kaClient) string {
			return "GET " + c.target() + " HTTP/1.1\nHost: " + kaHost + "\n\n"
		}, true, 200, true, ""},
		{"obs-fold", func(c *kaClient) string { return c.getReq("X-Folded: a", " b") }, true, 200, true, ""},
		{"two Content-Lengths", func(c *kaClient) string {
			return post(c, []string{"Content-Length: 3", "Content-Length: 4"}, "4abc")
		}, false, 400, false, ""},
		{"chunked body", func(c *kaClient) string {
			return post(c, []string{"Transfer-Encoding: chunked"}, "4\r\n4abc\r\n0\r\n\r\n")
		}, false, 200, true, ""},
		{"two Hosts", func(c *kaClient) string {
			return rawRequest("GET", c.target(), []string{"Host: " + kaHost, "Host: " + kaHost}, "")
		}, true, 400, false, ""},
		{"no Host", func(c *kaClient) string { return "GET " + c.target() + " HTTP/1.1\r\n\r\n" }, true, 400, false, ""},
		{"HTTP/1.0", func(c *kaClient) string {
			return "GET " + c.target() + " HTTP/1.0\r\nHost: " + kaHost + "\r\n\r\n"
		}, true, 200, true, ""},
		{"escaped path", func(c *kaClient) string {
			return strings.Replace(c.getReq(), kaPath, "/engine%2Eio/", 1)
		}, true, 200, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// On a connection of net/http's, then on one the fast path
			// serves: the same answer.
			for _, fast := range []bool{false, true} {
				c := s.dial(t)
				c.handshake() // takes c's connection over
				if fast {
					s.waitTakenOver(t, c)
				} else {
					n := s.dial(t)
					n.join(c)
					c = n
				}
				if tt.get {
					c.queue("4q")
				}
				outer := s.outer.Load()
				r := c.roundTrip(tt.req(c))
				if r.status != tt.status {
					t.Errorf("fast path %v: status %d %q, want %d", fast, r.status, r.body, tt.status)
				}
				if n := s.outer.Load() - outer; (n == 1) != tt.handler {
					t.Errorf("fast path %v: %d requests reached the handler, want it to: %v", fast, n, tt.handler)
				}
				if tt.closes != "" {
					if ev := c.rec.waitClose(t); ev.reason != tt.closes {
						t.Errorf("session closed with %q, want %q", ev.reason, tt.closes)
					}
				} else if c.rec.sess.Closed() {
					t.Errorf("session closed: %+v", c.rec.waitClose(t))
				}
			}
		})
	}
}

// TestKeepAliveHangUp: a client that hangs up while its GET waits on the
// fast path closes its session ("transport error"), as on net/http; one
// that hangs up between requests does not.
func TestKeepAliveHangUp(t *testing.T) {
	s := startKA(t, kaConfig{})
	tests := []struct {
		name   string
		before func(c *kaClient)
		closes string
	}{
		{"waiting GET", func(c *kaClient) {
			c.send(c.getReq())
			waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })
		}, "transport error"},
		{"POST body arriving", func(c *kaClient) {
			raw := c.postReq("4" + strings.Repeat("b", 100))
			c.send(raw[:len(raw)-50])
			waitFor(t, "the POST being read", func() bool {
				c.rec.sess.mu.Lock()
				defer c.rec.sess.mu.Unlock()
				return c.rec.sess.pl.posting
			})
		}, "transport error"},
		{"idle", func(c *kaClient) {}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(t)
			c.handshake()
			s.waitPollConns(t, 1)
			tt.before(c)
			_ = c.conn.Close()
			s.waitPollConns(t, 0)
			if tt.closes == "" {
				if c.rec.sess.Closed() {
					t.Errorf("session closed: %+v", c.rec.waitClose(t))
				}
				return
			}
			select {
			case <-c.rec.done:
			case <-time.After(3 * time.Second):
				t.Fatal("session not closed within 3s of the hang-up")
			}
			if ev := c.rec.waitClose(t); ev.reason != tt.closes {
				t.Errorf("session closed with %q, want %q", ev.reason, tt.closes)
			}
		})
	}
}

// TestKeepAliveTimeouts: an idle connection is closed after IdleTimeout, a
// head that does not all arrive after HeaderTimeout from its first byte
// (not later: a longer IdleTimeout armed before the head does not delay
// it), and not before: the deadlines wired to real sockets. Their timing
// (a head's deadline from its first byte only, however it trickles in) is
// TestKeepAliveDeadlines'.
func TestKeepAliveTimeouts(t *testing.T) {
	const short, long = 300 * time.Millisecond, 5 * time.Second
	tests := []struct {
		name string
		ka   KeepAlive
		want time.Duration
	}{
		{"idle", KeepAlive{IdleTimeout: short, HeaderTimeout: long}, short},
		{"head", KeepAlive{IdleTimeout: long, HeaderTimeout: short}, short},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startKA(t, kaConfig{ka: tt.ka})
			c := s.dial(t)
			start := time.Now()
			c.handshake()
			s.waitPollConns(t, 1)
			if tt.name != "idle" {
				start = time.Now()
				c.send(c.getReq()[:20])
			}
			got := c.readEOF(start)
			if got < tt.want || got > tt.want+2*time.Second {
				t.Errorf("connection closed after %v, want %v", got, tt.want)
			}
			s.waitPollConns(t, 0)
			if c.rec.sess.Closed() {
				t.Errorf("session closed: %+v", c.rec.waitClose(t))
			}
		})
	}
}

// TestKeepAliveServerClose: Server.Close answers the GETs waiting on the
// fast path with CLOSE, and closes every connection it serves.
func TestKeepAliveServerClose(t *testing.T) {
	s := startKA(t, kaConfig{})
	var waiting []*kaClient
	for range 3 {
		c := s.dial(t)
		c.handshake()
		c.send(c.getReq())
		waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })
		waiting = append(waiting, c)
	}
	idle := s.dial(t)
	idle.handshake()
	s.waitPollConns(t, 4)
	start := time.Now()
	s.Server.Close()
	for i, c := range waiting {
		r := c.answer()
		if r.status != 200 || r.body != "1" || !r.close {
			t.Errorf("GET %d: %d %q %v, want the CLOSE packet and Connection: close", i, r.status, r.body, r.header)
		}
		c.readEOF(start)
		if ev := c.rec.waitClose(t); ev.reason != "forced close" {
			t.Errorf("session %d closed with %q", i, ev.reason)
		}
	}
	idle.readEOF(start)
	s.waitPollConns(t, 0)
}

// settledHeap is the live heap once what was let go settles: net/http's
// goroutines of the hijacked connections may still be ending, releasing
// their buffers (sync.Pool keeps them for one more collection).
func settledHeap() uint64 {
	prev := heapAlloc()
	for range 50 {
		time.Sleep(10 * time.Millisecond) // until the heap stops falling, 0.5 s at most
		cur := heapAlloc()
		if cur+32<<10 >= prev {
			return min(cur, prev)
		}
		prev = cur
	}
	return prev
}

// TestKeepAliveHeapBound: connections of the fast path that send a part
// of a head, or a POST's head announcing MaxBufferSize bytes and 10 of
// them, hold a few KiB each: memory follows what arrives.
func TestKeepAliveHeapBound(t *testing.T) {
	const conns = 200
	tests := []struct {
		name  string
		part  func(c *kaClient) string
		ready func(pc *pollConn) bool
	}{
		{"partial head", func(c *kaClient) string { return c.getReq()[:30] }, func(pc *pollConn) bool { return pc.phase == phaseHead }},
		{"announced body", func(c *kaClient) string {
			return rawRequest("POST", c.target(), []string{"Content-Type: text/plain;charset=UTF-8", "Content-Length: 1000000"}, "4123456789")
		}, func(pc *pollConn) bool { return pc.post != nil && len(pc.in) == pc.postHead+10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startKA(t, kaConfig{opts: Options{MaxBufferSize: 1_000_000, Logger: discardLogger()}})
			clients := make([]*kaClient, conns)
			parts := make([]string, conns)
			for i := range clients {
				c := s.dial(t)
				c.handshake()
				clients[i], parts[i] = c, tt.part(c)
			}
			s.waitPollConns(t, conns)
			before := settledHeap()
			for i, c := range clients {
				c.send(parts[i])
			}
			waitFor(t, "every connection having read its part", func() bool { return s.countPollConns(tt.ready) == conns })
			after := settledHeap()
			per := growth(before, after) / conns
			t.Logf("%d connections: live heap %+.1f KiB (%d bytes each)", conns, float64(growth(before, after))/1024, per)
			if per > 16<<10 {
				t.Errorf("each connection holds %d bytes, want < 16 KiB", per)
			}
			if n := s.PollConns(); n != conns {
				t.Errorf("PollConns() = %d, want %d", n, conns)
			}
			runtime.KeepAlive(clients) // their buffers were in before
		})
	}
}

// TestKeepAliveGzip: a GET of a client that accepts gzip, whose payload
// reaches CompressionThreshold, is answered gzip-compressed, as net/http's
// path answers it; a gzip answer of net/http does not break the
// connection it leaves.
func TestKeepAliveGzip(t *testing.T) {
	s := startKA(t, kaConfig{})
	big := "4" + strings.Repeat("gzip me ", 500)
	c := s.dial(t)
	c.handshake()
	s.waitPollConns(t, 1)
	outer := s.outer.Load()
	for _, gz := range []bool{true, false} {
		var hdr []string
		if gz {
			hdr = []string{"Accept-Encoding: gzip, deflate"}
		}
		c.queue(big)
		r := c.get(hdr...)
		body := r.body
		if gz {
			if r.header.Get("Content-Encoding") != "gzip" || r.header.Get("Vary") != "Accept-Encoding" {
				t.Fatalf("answer's headers %v, want gzip", r.header)
			}
			body = gunzip(t, r.body)
		} else if r.header.Get("Content-Encoding") != "" || r.header.Get("Content-Length") != strconv.Itoa(len(big)) {
			t.Errorf("answer's headers %v, want plain", r.header)
		}
		if body != big {
			t.Errorf("gzip %v: body of %d bytes, want the %d queued", gz, len(body), len(big))
		}
		ref := s.dial(t)
		ref.join(c)
		ref.queue(big)
		want := ref.roundTrip(ref.getReq(append(hdr, "Connection: close")...))
		if d := sameHeaders(r.header, want.header, "Date", "Connection"); d != "" || want.body != r.body {
			t.Errorf("gzip %v: the answer differs from net/http's: %s", gz, d)
		}
	}
	if s.outer.Load() != outer+2 {
		t.Errorf("net/http served %d requests, want the 2 reference ones", s.outer.Load()-outer)
	}

	// net/http's gzip answer on a keep-alive connection.
	n := s.dial(t)
	n.join(c)
	n.queue(big)
	n.send(n.getReq("Accept-Encoding: gzip"))
	r, err := n.tryAnswer(3 * time.Second)
	if err != nil || r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("net/http's gzip answer: %v %v", err, r.header)
	}
	n.post("4next")
	n.expectMessages("next")
	s.waitTakenOver(t, n) // by the POST
	outer = s.outer.Load()
	n.post("4again")
	n.expectMessages("again")
	if s.outer.Load() != outer {
		t.Errorf("net/http served the POST after the takeover")
	}
}

// TestKeepAliveEIO3Binary: an Engine.IO v3 session's binary POSTs and
// GETs on the fast path.
func TestKeepAliveEIO3Binary(t *testing.T) {
	s := startKA(t, kaConfig{opts: Options{AllowEIO3: true}})
	c := s.dial(t)
	c.eio = 3
	c.handshake()
	s.waitPollConns(t, 1)
	outer := s.outer.Load()
	r := c.roundTrip(rawRequest("POST", c.target(),
		[]string{"Content-Type: application/octet-stream", "Content-Length: " + strconv.Itoa(len(v3bin(1, "\x04\x01\x02")))}, v3bin(1, "\x04\x01\x02")))
	if r.status != 200 || r.body != "ok" {
		t.Fatalf("binary POST: %d %q", r.status, r.body)
	}
	c.post("4:4abc")
	if got := c.rec.message(t); got != (recorded{"\x01\x02", true}) {
		t.Errorf("first message %v", got)
	}
	c.expectMessages("abc")
	_ = c.rec.sess.Send(BinaryMessage([]byte{1, 2}))
	c.queue("4t")
	r = c.get()
	if want := v3bin(1, "\x04\x01\x02") + v3bin(0, "4t"); r.body != want || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("GET: %q %v, want %q, application/octet-stream", r.body, r.header, want)
	}
	c.queue("4t")
	if r := c.get(); r.body != "2:4t" || r.header.Get("Content-Type") != "text/plain; charset=UTF-8" {
		t.Errorf("text GET: %q %v", r.body, r.header)
	}
	if s.outer.Load() != outer {
		t.Errorf("net/http served %d of the requests", s.outer.Load()-outer)
	}
}

// TestKeepAliveConnectionClose: a request of the fast path that asks for
// Connection: close is answered so, and the connection closes; its session
// stays open.
func TestKeepAliveConnectionClose(t *testing.T) {
	s := startKA(t, kaConfig{})
	for _, get := range []bool{false, true} {
		t.Run(fmt.Sprintf("GET %v", get), func(t *testing.T) {
			c := s.dial(t)
			c.handshake()
			s.waitTakenOver(t, c)
			outer := s.outer.Load()
			var r kaResp
			if get {
				c.queue("4q")
				r = c.roundTrip(c.getReq("Connection: close"))
			} else {
				r = c.roundTrip(c.postReq("4p", "Connection: keep-alive, close"))
			}
			if r.status != 200 || !r.close || s.outer.Load() != outer {
				t.Errorf("answer %d %q close %v, %d requests through net/http; want 200 and Connection: close from the fast path",
					r.status, r.body, r.close, s.outer.Load()-outer)
			}
			c.readEOF(time.Now())
			waitFor(t, "the connection closed", func() bool { return !s.takenOver(c) })
			if c.rec.sess.Closed() {
				t.Errorf("session closed: %+v", c.rec.waitClose(t))
			}
		})
	}
}

// TestKeepAliveOverlap: a second GET while one waits closes the session
// ("transport error") whichever of net/http and the fast path serves each,
// as on net/http alone; the waiting one gets the CLOSE packet.
func TestKeepAliveOverlap(t *testing.T) {
	s := startKA(t, kaConfig{})
	for _, firstFast := range []bool{true, false} {
		t.Run(fmt.Sprintf("waiting on the fast path: %v", firstFast), func(t *testing.T) {
			fast := s.dial(t)
			fast.handshake()
			s.waitTakenOver(t, fast)
			other := s.dial(t) // a connection of net/http's
			other.join(fast)
			waiting, second := fast, other
			if !firstFast {
				waiting, second = other, fast
			}
			waiting.send(waiting.getReq())
			waitFor(t, "the first GET waiting", func() bool {
				return fast.rec.sess.Waiting() && waitingOnFastPath(fast.rec.sess) == firstFast
			})
			if r := second.roundTrip(second.getReq()); r.status != 400 {
				t.Errorf("second GET: %d %q, want 400", r.status, r.body)
			}
			if r := waiting.answer(); r.status != 200 || r.body != "1" {
				t.Errorf("first GET: %d %q, want the CLOSE packet", r.status, r.body)
			}
			if ev := fast.rec.waitClose(t); ev.reason != "transport error" {
				t.Errorf("session closed with %q", ev.reason)
			}
		})
	}
}

// TestKeepAliveHeartbeat: the heartbeat's PINGs wake the GETs waiting on
// the fast path, PONGs arrive by its POSTs, and a missed PONG closes the
// session, whose waiting GET gets the CLOSE packet.
func TestKeepAliveHeartbeat(t *testing.T) {
	s := startKA(t, kaConfig{opts: Options{PingInterval: 100 * time.Millisecond, PingTimeout: 400 * time.Millisecond}})
	c := s.dial(t)
	c.handshake()
	s.waitTakenOver(t, c)
	outer := s.outer.Load()
	for i := range 4 {
		if r := c.get(); r.body != "2" {
			t.Fatalf("GET %d: %q, want a PING", i, r.body)
		}
		c.post("3")
	}
	if r := c.get(); r.body != "2" {
		t.Fatalf("GET: %q, want a PING", r.body)
	}
	start := time.Now()
	if r := c.get(); r.body != "1" { // no PONG: the session times out
		t.Errorf("GET after a missed PONG: %q, want the CLOSE packet", r.body)
	}
	if ev := c.rec.waitClose(t); ev.reason != "ping timeout" {
		t.Errorf("session closed with %q after %v", ev.reason, time.Since(start))
	}
	if s.outer.Load() != outer {
		t.Errorf("net/http served %d of the requests", s.outer.Load()-outer)
	}
}

// obsConn records what the engine tells a connection (ConnObserver).
type obsConn struct {
	net.Conn
	mu     sync.Mutex
	events []string
}

func (c *obsConn) NetConn() net.Conn { return c.Conn }
func (c *obsConn) Upgraded()         { c.add("upgraded") }
func (c *obsConn) ServingSession(serving bool) {
	c.add(strconv.FormatBool(serving))
}

func (c *obsConn) add(e string) {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
}

func (c *obsConn) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.events, " ")
}

type obsListener struct {
	net.Listener
	conns chan *obsConn
}

func (l *obsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &obsConn{Conn: nc}
	l.conns <- c
	return c, nil
}

// TestKeepAliveObserver: a listener's connections that implement
// ConnObserver are told of the takeover, of each request the fast path
// serves, and of an upgrade to WebSocket, through the hand-back too.
func TestKeepAliveObserver(t *testing.T) {
	accepted := make(chan *obsConn, 16)
	s := startKA(t, kaConfig{listener: func(ln net.Listener) net.Listener { return &obsListener{ln, accepted} }})
	c := s.dial(t)
	oc := <-accepted
	expect := func(want string) {
		t.Helper()
		waitFor(t, fmt.Sprintf("events %q (are %q)", want, oc), func() bool { return oc.String() == want })
	}
	c.handshake()
	s.waitTakenOver(t, c)
	expect("false")
	c.post("4p")
	expect("false true false")
	c.send(c.getReq())
	waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })
	expect("false true false true")
	c.queue("4q")
	c.answer()
	expect("false true false true false")
	// Handed back, then taken over again by net/http's POST.
	if r := c.roundTrip(rawRequest("GET", "/other", nil, "")); r.body != "other" {
		t.Fatalf("/other: %d %q", r.status, r.body)
	}
	c.post("4p")
	s.waitTakenOver(t, c)
	expect("false true false true false false")
	// A WebSocket handshake: handed back, and upgraded.
	r := c.roundTrip(rawRequest("GET", kaPath+"?EIO=4&transport=websocket", []string{"Connection: Upgrade", "Upgrade: websocket",
		"Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="}, ""))
	if r.status != http.StatusSwitchingProtocols {
		t.Fatalf("websocket handshake: %d %q", r.status, r.body)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	if f, err := readServerFrame(c.br); err != nil || f.op != opText || !strings.HasPrefix(string(f.payload), "0{") {
		t.Fatalf("OPEN frame: %+v %v", f, err)
	}
	expect("false true false true false false upgraded")
	if ws := s.session(t); ws.sess.Transport() != "websocket" {
		t.Errorf("the session opened is on %s", ws.sess.Transport())
	}

	// A hang-up while a GET waits.
	h := s.dial(t)
	oh := <-accepted
	h.handshake()
	s.waitTakenOver(t, h)
	h.send(h.getReq())
	waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(h.rec.sess) })
	_ = h.conn.Close()
	waitFor(t, fmt.Sprintf("events of the hung-up connection (%q)", oh), func() bool { return oh.String() == "false true false" })
}

// BenchmarkPollKeepAlive is BenchmarkPollHTTP on the keep-alive fast path:
// one op is a GET that finds a message queued and its answer, on a
// connection the engine took over, read by a raw client. Compare its
// cpu-µs/op and allocs/op with BenchmarkPollHTTP's (net/http).
func BenchmarkPollKeepAlive(b *testing.B) {
	s := startKA(b, kaConfig{})
	c := s.dial(b)
	c.handshake()
	c.queue("4first")
	if r := c.roundTrip(c.getReq()); r.status != http.StatusOK {
		b.Fatalf("first poll: %d %q", r.status, r.body)
	}
	s.waitTakenOver(b, c)
	req := c.getReq("User-Agent: Go-http-client/1.1", "Accept-Encoding: gzip")
	payload := []byte(`42["message","hello from the benchmark, one chat line"]`)
	poll := func() {
		if err := c.rec.sess.Send(TextMessage(payload)); err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(c.conn, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("poll: %d, %v", resp.StatusCode, err)
		}
		_ = resp.Body.Close()
	}
	_ = c.conn.SetDeadline(time.Time{})
	poll()
	if !s.takenOver(c) {
		b.Fatal("the connection is not on the fast path")
	}
	benchCPU(b, poll)
}

// flushBlocker occupies a flush worker of the epoll engine until released.
type flushBlocker struct {
	evState
	started chan struct{}
	release chan struct{}
}

func (b *flushBlocker) evs() *evState  { return &b.evState }
func (b *flushBlocker) runRead([]byte) {}
func (b *flushBlocker) runFlush() {
	b.started <- struct{}{}
	<-b.release
}

// blockFlushers holds every flush worker of the epoll engine until the
// function it returns is called (by the test's cleanup at the latest).
func blockFlushers(tb testing.TB, e *epoll) (release func()) {
	tb.Helper()
	b := &flushBlocker{started: make(chan struct{}), release: make(chan struct{})}
	for range flushWorkers() {
		e.flusher.submit(b)
	}
	for range flushWorkers() {
		select {
		case <-b.started:
		case <-time.After(waitTimeout):
			tb.Fatal("the flush workers did not start the blockers")
		}
	}
	var once sync.Once
	release = func() { once.Do(func() { close(b.release) }) }
	tb.Cleanup(release)
	return release
}

// TestKeepAliveClosingSessionIsFinished: a session that closes while its
// GET waits on the fast path has that GET woken for its last answer; if
// the client hangs up before the answer is written (here: while every
// flush worker is busy), the session is finished all the same, not left
// closing forever (it was, before: the server then counted it open, and a
// shutdown waited for it until its grace ran out).
func TestKeepAliveClosingSessionIsFinished(t *testing.T) {
	s := startKA(t, kaConfig{})
	e, ok := s.Server.io.(*epoll)
	if !ok {
		t.Fatal("the server does not run on the epoll engine")
	}
	c := s.dial(t)
	c.handshake()
	s.waitPollConns(t, 1)
	c.send(c.getReq())
	waitFor(t, "the GET waiting on the fast path", func() bool { return waitingOnFastPath(c.rec.sess) })

	release := blockFlushers(t, e)
	c.rec.sess.Close("bye") // wakes the GET: its answer waits for a flush worker
	if !c.rec.sess.Closed() || c.rec.sess.Waiting() {
		t.Fatal("Close did not wake the pending GET")
	}
	_ = c.conn.Close()
	s.waitPollConns(t, 0)
	waitFor(t, "the closing session to be finished after its client hung up", func() bool { return s.Server.Len() == 0 })
	release()
	if ev := c.rec.waitClose(t); ev.reason != "bye" {
		t.Errorf("session closed with %q, want %q", ev.reason, "bye")
	}
}

// TestKeepAliveIdentities: a connection whose requests come with and
// without Origin (a browser's POSTs and same-origin GETs) goes back to
// net/http once for each, then keeps both on the fast path, each answer
// with the outer handler's headers for its own Origin; at most
// maxIdentities are kept.
func TestKeepAliveIdentities(t *testing.T) {
	const origin = "https://a.example"
	s := startKA(t, kaConfig{cors: true})
	c := s.dial(t)
	c.handshake()
	s.waitTakenOver(t, c)
	withOrigin := []string{"Origin: " + origin}
	check := func(step string, r kaResp, hdr []string) {
		t.Helper()
		want := ""
		if len(hdr) > 0 {
			want = origin
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); r.status != 200 || got != want {
			t.Errorf("%s: %d, Access-Control-Allow-Origin %q, want %q", step, r.status, got, want)
		}
	}
	post := func(body string, hdr []string) kaResp {
		return c.roundTrip(rawRequest("POST", c.target(), append(slices.Clone(hdr), "Content-Type: text/plain;charset=UTF-8", "Content-Length: "+strconv.Itoa(len(body))), body))
	}
	// First time with Origin: net/http serves it, and takes the connection again.
	outer := s.outer.Load()
	check("first POST with Origin", post("4p0", withOrigin), withOrigin)
	if s.outer.Load() != outer+1 {
		t.Fatalf("the first request with Origin was not handed back")
	}
	s.waitTakenOver(t, c)
	outer = s.outer.Load()
	for i := range 6 {
		hdr := withOrigin
		if i%2 == 1 {
			hdr = nil
		}
		c.queue(fmt.Sprintf("4g%d", i))
		r := c.roundTrip(rawRequest("GET", c.target(), hdr, ""))
		check(fmt.Sprintf("GET %d", i), r, hdr)
		if r.body != fmt.Sprintf("4g%d", i) {
			t.Errorf("GET %d = %q", i, r.body)
		}
		check(fmt.Sprintf("POST %d", i), post(fmt.Sprintf("4p%d", i+1), hdr), hdr)
	}
	if n := s.outer.Load() - outer; n != 0 {
		t.Errorf("net/http served %d of the requests, with and without Origin, once both were known", n)
	}
	c.expectMessages("p0", "p1", "p2", "p3", "p4", "p5", "p6")

	ids := addIdentity(nil, kaIdentity{path: "/a"})
	for _, p := range []string{"/b", "/c", "/a", "/d", "/e"} {
		ids = addIdentity(ids, kaIdentity{path: p})
	}
	var paths []string
	for _, id := range ids {
		paths = append(paths, id.path)
	}
	if want := []string{"/c", "/a", "/d", "/e"}; !slices.Equal(paths, want) {
		t.Errorf("identities kept: %v, want %v (the newest %d, one each)", paths, want, maxIdentities)
	}
}

// TestKeepAliveDeadlines checks the fast path's deadlines in a synctest
// bubble, with the connection's socket left out (a pipe stands for the
// listener's connection): idle, a head from its first byte (moving an idle
// deadline that is later), a POST's body (pingInterval + pingTimeout), an
// answer's write (pingTimeout), none while a GET waits; each closes the
// connection at its time, not before.
func TestKeepAliveDeadlines(t *testing.T) {
	const (
		idle, head         = 30 * time.Second, 10 * time.Second
		interval, pingWait = 25 * time.Second, 20 * time.Second
	)
	tests := []struct {
		name   string
		phases []int // set in turn, one second apart
		want   time.Duration
	}{
		{"idle", []int{phaseIdle}, idle},
		{"head", []int{phaseIdle, phaseHead}, 1*time.Second + head},
		{"head, its first byte only", []int{phaseIdle, phaseHead, phaseHead, phaseHead}, 1*time.Second + head},
		{"body", []int{phaseIdle, phaseBody}, 1*time.Second + interval + pingWait},
		{"write", []int{phaseIdle, phaseWrite}, 1*time.Second + pingWait},
		{"write, then idle again", []int{phaseIdle, phaseWrite, phaseIdle}, 2*time.Second + idle},
		{"waiting GET", []int{phaseIdle, phaseWait}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &Server{log: slog.New(slog.DiscardHandler)}
				srv.opts.PingInterval, srv.opts.PingTimeout = interval, pingWait
				srv.opts.KeepAlive = &KeepAlive{IdleTimeout: idle, HeaderTimeout: head, MaxHeaderBytes: 1 << 10}
				a, b := net.Pipe()
				defer b.Close()
				pc := &pollConn{srv: srv, fc: &fdConn{fd: -1}, nc: a, ka: srv.opts.KeepAlive}
				srv.addPollConn(pc)
				start := time.Now()
				for i, ph := range tt.phases {
					if i > 0 {
						time.Sleep(time.Second)
					}
					pc.mu.Lock()
					pc.setPhaseLocked(ph)
					pc.mu.Unlock()
				}
				closed := func() bool {
					pc.mu.Lock()
					defer pc.mu.Unlock()
					return pc.closed
				}
				if tt.want == 0 {
					time.Sleep(time.Hour)
					synctest.Wait()
					if closed() {
						t.Fatal("closed while a GET waits")
					}
					pc.shut()
					return
				}
				time.Sleep(tt.want - time.Since(start) - time.Millisecond)
				synctest.Wait()
				if closed() {
					t.Fatalf("closed %v after the start, before its deadline %v", time.Since(start), tt.want)
				}
				time.Sleep(2 * time.Millisecond)
				synctest.Wait()
				if !closed() {
					t.Fatalf("still open %v after the start, past its deadline %v", time.Since(start), tt.want)
				}
				if srv.PollConns() != 0 {
					t.Errorf("PollConns() = %d after the close", srv.PollConns())
				}
			})
		})
	}
}
