package engineio

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestHandshake(t *testing.T) {
	opts := Options{PingInterval: 1234 * time.Millisecond, PingTimeout: 567 * time.Millisecond, MaxBufferSize: 4321, AllowEIO3: true}
	tests := []struct {
		name         string
		opts         Options
		eio          int
		websocket    bool
		wantUpgrades []string
	}{
		{"polling v4", opts, 4, false, []string{"websocket"}},
		{"polling v3", opts, 3, false, []string{"websocket"}},
		{"polling without upgrades", Options{DisableUpgrades: true}, 4, false, []string{}},
		{"websocket v4", opts, 4, true, []string{}},
		{"websocket v3", opts, 3, true, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts, true)
			var (
				hs  handshakeJSON
				rec *recorder
			)
			if tt.websocket {
				_, hs, rec = wsOpen(t, s, tt.eio)
			} else {
				var c *pollClient
				c, rec = pollOpen(t, s, tt.eio)
				hs = c.hs
			}
			o := s.Options()
			if len(hs.SID) != 20 || !validID(hs.SID) || hs.SID != rec.sess.ID() {
				t.Errorf("sid = %q, want the session's 20-character id %q", hs.SID, rec.sess.ID())
			}
			if fmt.Sprint(hs.Upgrades) != fmt.Sprint(tt.wantUpgrades) || hs.Upgrades == nil {
				t.Errorf("upgrades = %#v, want %#v", hs.Upgrades, tt.wantUpgrades)
			}
			if hs.PingInterval != o.PingInterval.Milliseconds() || hs.PingTimeout != o.PingTimeout.Milliseconds() || hs.MaxPayload != o.MaxBufferSize {
				t.Errorf("handshake %+v, want pingInterval %v, pingTimeout %v, maxPayload %d", hs, o.PingInterval, o.PingTimeout, o.MaxBufferSize)
			}
			if got := rec.sess.Protocol(); got != tt.eio {
				t.Errorf("Protocol() = %d, want %d", got, tt.eio)
			}
			wantTransport := "polling"
			if tt.websocket {
				wantTransport = "websocket"
			}
			if got := rec.sess.Transport(); got != wantTransport {
				t.Errorf("Transport() = %q, want %q", got, wantTransport)
			}
			if s.Session(hs.SID) != rec.sess || s.Len() != 1 {
				t.Errorf("Session(sid) = %p, Len() = %d; want the session, 1", s.Session(hs.SID), s.Len())
			}
		})
	}
}

func TestHandshakeDefaults(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, _ := pollOpen(t, s, 4)
	if c.hs.PingInterval != 25000 || c.hs.PingTimeout != 20000 || c.hs.MaxPayload != 1_000_000 {
		t.Errorf("default handshake %+v, want Node's 25000, 20000, 1000000", c.hs)
	}
}

func TestPollingEcho(t *testing.T) {
	s := startServer(t, Options{}, true)
	c, rec := pollOpen(t, s, 4)
	if r := c.post("4hello\x1e4world\x1eb" + b64("\x00\xff")); r.status != 200 || r.body != "ok" {
		t.Fatalf("POST: %d %q, want 200 ok", r.status, r.body)
	}
	for _, want := range []recorded{{"hello", false}, {"world", false}, {"\x00\xff", true}} {
		if got := rec.message(t); got != want {
			t.Errorf("received %v, want %v", got, want)
		}
	}
	r, packets := c.get()
	if want := []string{"4hello", "4world", "b" + b64("\x00\xff")}; fmt.Sprint(packets) != fmt.Sprint(want) {
		t.Errorf("GET = %q, want %q", packets, want)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q", cc)
	}
}

func TestPollingEchoV3(t *testing.T) {
	tests := []struct {
		name     string
		b64      bool
		wantType string
		want     string
	}{
		{"xhr2", false, "application/octet-stream", v3bin(0, "4a😀") + v3bin(1, "\x04\x01\x02")},
		{"b64", true, "text/plain; charset=UTF-8", "4:4a😀6:b4AQI="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{AllowEIO3: true}, true)
			hc := &http.Client{Timeout: waitTimeout}
			q := "EIO=3&transport=polling"
			if tt.b64 {
				q += "&b64=1"
			}
			hs := do(t, hc, "GET", s.url(q), "", nil)
			packets, err := decodePayloadV3Text([]byte(hs.body))
			if err != nil || len(packets) != 1 {
				t.Fatalf("handshake %q: %v", hs.body, err)
			}
			sid := parseOpen(t, "0"+string(packets[0].data)).SID
			rec := s.session(t)
			url := s.url(q + "&sid=" + sid)
			// A text payload with an emoji (two UTF-16 units), then a
			// binary payload.
			if r := do(t, hc, "POST", url, "4:4a😀", nil); r.body != "ok" {
				t.Fatalf("POST text: %d %q", r.status, r.body)
			}
			if r := do(t, hc, "POST", url, v3bin(1, "\x04\x01\x02"), http.Header{"Content-Type": {"application/octet-stream"}}); r.body != "ok" {
				t.Fatalf("POST binary: %d %q", r.status, r.body)
			}
			if got := rec.message(t); got != (recorded{"a😀", false}) {
				t.Errorf("first message %v", got)
			}
			if got := rec.message(t); got != (recorded{"\x01\x02", true}) {
				t.Errorf("second message %v", got)
			}
			waitFor(t, "both echoes queued", func() bool { n, _ := rec.sess.Queued(); return n == 2 })
			r := do(t, hc, "GET", url, "", nil)
			if r.body != tt.want || r.header.Get("Content-Type") != tt.wantType {
				t.Errorf("GET = %q (%s), want %q (%s)", r.body, r.header.Get("Content-Type"), tt.want, tt.wantType)
			}
		})
	}
}

func TestPollingGzip(t *testing.T) {
	s := startServer(t, Options{CompressionThreshold: 100}, false)
	c, rec := pollOpen(t, s, 4)
	big := TextMessage([]byte("4" + strings.Repeat("gzip me ", 50)))
	for _, accept := range []string{"gzip, deflate", "identity"} {
		if err := rec.sess.Send(big); err != nil {
			t.Fatal(err)
		}
		r := do(t, c.hc, "GET", c.url(), "", http.Header{"Accept-Encoding": {accept}})
		body := r.body
		if accept != "identity" {
			if r.header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Accept-Encoding %q: Content-Encoding %q, want gzip", accept, r.header.Get("Content-Encoding"))
			}
			body = gunzip(t, r.body)
		} else if r.header.Get("Content-Encoding") != "" {
			t.Fatalf("Accept-Encoding identity: Content-Encoding %q", r.header.Get("Content-Encoding"))
		}
		if body != string(big.b) {
			t.Errorf("Accept-Encoding %q: body %q", accept, body)
		}
	}
}

// TestRefusals checks the Engine.IO error answers: status, code, message.
func TestRefusals(t *testing.T) {
	s := startServer(t, Options{AllowRequest: func(r *http.Request) error {
		if r.Header.Get("X-Deny") != "" {
			return errors.New("denied by policy")
		}
		return nil
	}}, false)
	c, _ := pollOpen(t, s, 4)
	sid := c.sid
	tests := []struct {
		name       string
		method     string
		query      string
		header     http.Header
		wantStatus int
		wantCode   int
		wantMsg    string
	}{
		{"no transport", "GET", "EIO=4", nil, 400, codeUnknownTransport, "Transport unknown"},
		{"unknown transport", "GET", "EIO=4&transport=flashsocket", nil, 400, codeUnknownTransport, "Transport unknown"},
		{"no EIO", "GET", "transport=polling", nil, 400, codeUnsupportedProtocol, "Unsupported protocol version"},
		{"EIO 5", "GET", "EIO=5&transport=polling", nil, 400, codeUnsupportedProtocol, "Unsupported protocol version"},
		{"EIO 3 not allowed", "GET", "EIO=3&transport=polling", nil, 400, codeUnsupportedProtocol, "Unsupported protocol version"},
		{"handshake with POST", "POST", "EIO=4&transport=polling", nil, 400, codeBadHandshakeMethod, "Bad handshake method"},
		{"handshake with PUT", "PUT", "EIO=4&transport=polling", nil, 400, codeBadHandshakeMethod, "Bad handshake method"},
		{"websocket handshake without upgrade", "GET", "EIO=4&transport=websocket", nil, 400, codeBadRequest, "Bad request"},
		{"unknown sid", "GET", "EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", nil, 400, codeUnknownSID, "Session ID unknown"},
		{"malformed sid", "GET", "EIO=4&transport=polling&sid=a%20b", nil, 400, codeBadRequest, "Bad request"},
		{"sid too long", "GET", "EIO=4&transport=polling&sid=" + strings.Repeat("a", 65), nil, 400, codeBadRequest, "Bad request"},
		{"EIO of another version than the session's", "GET", "EIO=3&transport=polling&sid=" + sid, nil, 400, codeBadRequest, "Bad request"},
		{"websocket transport on a polling request", "GET", "EIO=4&transport=websocket&sid=" + sid, nil, 400, codeBadRequest, "Bad request"},
		{"PUT on a session", "PUT", "EIO=4&transport=polling&sid=" + sid, nil, 400, codeBadRequest, "Bad request"},
		{"refused by AllowRequest", "GET", "EIO=4&transport=polling", http.Header{"X-Deny": {"1"}}, 403, codeForbidden, "denied by policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c.hc, tt.method, s.url(tt.query), "", tt.header)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tt.wantStatus)
			}
			if e := parseError(t, r); e.Code != tt.wantCode || e.Message != tt.wantMsg {
				t.Errorf("error %+v, want code %d %q", e, tt.wantCode, tt.wantMsg)
			}
		})
	}
	// OPTIONS (a CORS preflight) is answered 204, handshake or not.
	for _, q := range []string{"EIO=4&transport=polling", "EIO=4&transport=polling&sid=" + sid} {
		if r := do(t, c.hc, "OPTIONS", s.url(q), "", nil); r.status != http.StatusNoContent {
			t.Errorf("OPTIONS %s: %d, want 204", q, r.status)
		}
	}
	// None of these closed the session.
	if s.Session(sid) == nil {
		t.Error("a refused request closed the session")
	}
	if got := s.Stats().Refused[400]; got < 10 {
		t.Errorf("Stats().Refused[400] = %d", got)
	}
}

// TestRefusedOrigin: an Origin header with a control character is
// refused. net/http refuses such headers before any handler runs; the
// engine checks too, for servers that do not.
func TestRefusedOrigin(t *testing.T) {
	s := startServer(t, Options{}, false)
	req := httptest.NewRequest("GET", "/?EIO=4&transport=polling", nil)
	req.Header.Set("Origin", "http://a\x01b")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	r := response{w.Code, w.Header(), w.Body.String()}
	if r.status != 400 || parseError(t, r).Code != codeBadRequest {
		t.Errorf("answer %d %q, want 400 with code 3", r.status, r.body)
	}
	if s.Len() != 0 {
		t.Error("a session was opened")
	}
}

func TestWebSocketHandshakeRefusals(t *testing.T) {
	s := startServer(t, Options{}, false)
	tests := []struct {
		name   string
		header string
	}{
		{"version 8", "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"},
		{"bad key", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n"},
		{"no key", "Sec-WebSocket-Version: 13\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", s.ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(waitTimeout))
			fmt.Fprintf(conn, "GET /?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n%sConnection: close\r\n\r\n", tt.header)
			b, _ := io.ReadAll(conn)
			if !bytes.HasPrefix(b, []byte("HTTP/1.1 400")) {
				t.Errorf("answer %q, want 400", b)
			}
		})
	}
	waitFor(t, "no session left", func() bool { return s.Len() == 0 && s.count.Load() == 0 })
}

// TestOverlappingGet: a second GET while one is pending is refused and
// closes the session; the pending one gets CLOSE.
func TestOverlappingGet(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, rec := pollOpen(t, s, 4)
	first := make(chan response, 1)
	go func() { r, _ := c.get(); first <- r }()
	waitFor(t, "the first GET pending", rec.sess.Waiting)
	r, _ := c.get()
	if r.status != 400 || parseError(t, r).Code != codeBadRequest {
		t.Errorf("second GET: %d %q, want 400 code 3", r.status, r.body)
	}
	if ev := rec.waitClose(t); ev.reason != "transport error" || !errors.Is(ev.err, errOverlap) {
		t.Errorf("closed with %q (%v), want transport error (overlap)", ev.reason, ev.err)
	}
	select {
	case r := <-first:
		if r.status != 200 || r.body != "1" {
			t.Errorf("first GET: %d %q, want 200 \"1\" (CLOSE)", r.status, r.body)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the first GET was not released")
	}
	waitFor(t, "session gone", func() bool { return s.Len() == 0 })
}

// TestOverlappingPost: a second POST while one is being read is refused
// and closes the session.
func TestOverlappingPost(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, rec := pollOpen(t, s, 4)
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", c.url(), pr)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		resp, err := c.hc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	if _, err := pw.Write([]byte("4part")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first POST being read", func() bool {
		rec.sess.mu.Lock()
		defer rec.sess.mu.Unlock()
		return rec.sess.pl.posting
	})
	r := c.post("4second")
	if r.status != 400 || parseError(t, r).Code != codeBadRequest {
		t.Errorf("second POST: %d %q, want 400 code 3", r.status, r.body)
	}
	if ev := rec.waitClose(t); ev.reason != "transport error" || !errors.Is(ev.err, errPostOverlap) {
		t.Errorf("closed with %q (%v), want transport error (post overlap)", ev.reason, ev.err)
	}
	pw.Close()
	<-first
	select {
	case m := <-rec.msgs:
		t.Errorf("a message of the closed session was handed on: %v", m)
	default:
	}
}

func TestPostTooLarge(t *testing.T) {
	const limit = 1000
	body := "4" + strings.Repeat("x", limit) // limit+1 bytes
	tests := []struct {
		name    string
		chunked bool
	}{
		{"content-length", false},
		{"chunked", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{MaxBufferSize: limit}, false)
			c, rec := pollOpen(t, s, 4)
			var rd io.Reader = strings.NewReader(body)
			if tt.chunked {
				rd = io.MultiReader(rd) // no length known: chunked
			}
			req, _ := http.NewRequest("POST", c.url(), rd)
			resp, err := c.hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if tt.chunked != (req.ContentLength <= 0) {
				t.Fatalf("request ContentLength %d", req.ContentLength)
			}
			r := response{resp.StatusCode, resp.Header, string(b)}
			if r.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d (%q), want 413", r.status, r.body)
			}
			if e := parseError(t, r); e.Code != codeBadRequest || e.Message != "Payload too large" {
				t.Errorf("error %+v", e)
			}
			if ev := rec.waitClose(t); ev.reason != "transport error" {
				t.Errorf("closed with %q, want transport error", ev.reason)
			}
			// A body of exactly the limit is fine.
			s2 := startServer(t, Options{MaxBufferSize: limit}, false)
			c2, rec2 := pollOpen(t, s2, 4)
			if r := c2.post(body[:limit]); r.body != "ok" {
				t.Fatalf("POST of %d bytes: %d %q", limit, r.status, r.body)
			}
			if m := rec2.message(t); len(m.data) != limit-1 {
				t.Errorf("message of %d bytes", len(m.data))
			}
		})
	}
}

// TestPostBadPayload: a binary body is refused in v4 (Node: 400, and
// onError("invalid content")). Bodies that are not Engine.IO payloads are
// answered "ok" and close the session, as in Node: TestMalformedPostBody.
func TestPostBadPayload(t *testing.T) {
	tests := []struct {
		name, ctype, body string
	}{
		{"binary body in v4", "application/octet-stream", "\x00\x01\xff4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{}, false)
			c, rec := pollOpen(t, s, 4)
			r := do(t, c.hc, "POST", c.url(), tt.body, http.Header{"Content-Type": {tt.ctype}})
			if r.status != 400 || parseError(t, r).Code != codeBadRequest {
				t.Errorf("POST %q: %d %q, want 400 code 3", tt.body, r.status, r.body)
			}
			if ev := rec.waitClose(t); ev.reason != "parse error" && ev.reason != "transport error" {
				t.Errorf("closed with %q", ev.reason)
			}
		})
	}
}

// TestPollClosedPrematurely: a client that gives up its pending GET is
// gone ("transport error"), as in Node.
func TestPollClosedPrematurely(t *testing.T) {
	s := startServer(t, Options{}, false)
	c, rec := pollOpen(t, s, 4)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", c.url(), nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := c.hc.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "GET pending", rec.sess.Waiting)
	cancel()
	<-done
	if ev := rec.waitClose(t); ev.reason != "transport error" || !errors.Is(ev.err, errPollClosed) {
		t.Errorf("closed with %q (%v), want transport error (poll closed)", ev.reason, ev.err)
	}
}

// heartbeatSlack is how late a timer may fire on a loaded machine.
const heartbeatSlack = 150 * time.Millisecond

// TestHeartbeatV4 checks Node's heartbeat: a PING pingInterval after the
// handshake, the next one pingInterval after the client's PONG (not after
// the previous PING), and a close pingTimeout after an unanswered PING.
func TestHeartbeatV4(t *testing.T) {
	const interval, timeout = 300 * time.Millisecond, 400 * time.Millisecond
	const pongDelay = 150 * time.Millisecond
	checkWithin := func(t *testing.T, what string, got, want time.Duration) {
		t.Helper()
		if got < want-10*time.Millisecond || got > want+heartbeatSlack {
			t.Errorf("%s after %v, want %v", what, got.Round(time.Millisecond), want)
		}
	}
	t.Run("polling", func(t *testing.T) {
		s := startServer(t, Options{PingInterval: interval, PingTimeout: timeout}, false)
		opened := time.Now()
		c, rec := pollOpen(t, s, 4)
		if _, p := c.get(); fmt.Sprint(p) != "[2]" {
			t.Fatalf("GET = %q, want PING", p)
		}
		checkWithin(t, "first PING", time.Since(opened), interval)
		pinged := time.Now()
		// Answer late: the next PING is due pingInterval after the PONG.
		waitUntil(pinged.Add(pongDelay))
		ponged := time.Now()
		if r := c.post("3"); r.body != "ok" {
			t.Fatalf("POST PONG: %q", r.body)
		}
		if _, p := c.get(); fmt.Sprint(p) != "[2]" {
			t.Fatalf("GET = %q, want PING", p)
		}
		checkWithin(t, "second PING, after the PONG,", time.Since(ponged), interval)
		pinged = time.Now()
		ev := rec.waitClose(t)
		if ev.reason != "ping timeout" {
			t.Errorf("closed with %q, want ping timeout", ev.reason)
		}
		checkWithin(t, "close, after the unanswered PING,", time.Since(pinged), timeout)
	})
	for _, m := range ioModes {
		t.Run("websocket/"+m.name, func(t *testing.T) {
			s := startServer(t, Options{PingInterval: interval, PingTimeout: timeout, IOMode: m.mode}, false)
			opened := time.Now()
			c, _, rec := wsOpen(t, s, 4)
			if p := c.readText(); p != "2" {
				t.Fatalf("got %q, want PING", p)
			}
			checkWithin(t, "first PING", time.Since(opened), interval)
			waitUntil(time.Now().Add(pongDelay))
			ponged := time.Now()
			c.write("3")
			if p := c.readText(); p != "2" {
				t.Fatalf("got %q, want PING", p)
			}
			checkWithin(t, "second PING, after the PONG,", time.Since(ponged), interval)
			pinged := time.Now()
			code, before := c.readClose()
			checkWithin(t, "close, after the unanswered PING,", time.Since(pinged), timeout)
			if code != websocket.CloseNormalClosure || len(before) != 0 {
				t.Errorf("close code %d after %q, want 1000", code, before)
			}
			if ev := rec.waitClose(t); ev.reason != "ping timeout" {
				t.Errorf("closed with %q, want ping timeout", ev.reason)
			}
		})
	}
}

// waitUntil blocks until t: the client's deliberate delay in answering.
func waitUntil(t time.Time) { <-time.After(time.Until(t)) }

// TestHeartbeatV3: the client pings, the server answers PONG; a client
// that stops pinging is closed after pingInterval+pingTimeout.
func TestHeartbeatV3(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 200 * time.Millisecond
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{PingInterval: interval, PingTimeout: timeout, AllowEIO3: true, IOMode: m.mode}, false)
			c, _, rec := wsOpen(t, s, 3)
			var pinged time.Time
			for i := range 3 {
				if i > 0 {
					waitUntil(pinged.Add(interval)) // within interval+timeout
				}
				pinged = time.Now()
				c.write("2")
				if p := c.readText(); p != "3" {
					t.Fatalf("got %q, want PONG", p)
				}
			}
			if rec.isClosed() {
				t.Fatal("a v3 client that pings was closed")
			}
			c.readClose()
			if d := time.Since(pinged); d < interval+timeout-10*time.Millisecond || d > interval+timeout+heartbeatSlack {
				t.Errorf("closed %v after the last PING, want %v", d, interval+timeout)
			}
			if ev := rec.waitClose(t); ev.reason != "ping timeout" {
				t.Errorf("closed with %q, want ping timeout", ev.reason)
			}
		})
	}
}

// TestHeartbeatDirection: a v4 client may not PING, a v3 client may not
// PONG.
func TestHeartbeatDirection(t *testing.T) {
	for _, tt := range []struct {
		eio    int
		packet string
	}{{4, "2"}, {3, "3"}} {
		t.Run(fmt.Sprintf("v%d", tt.eio), func(t *testing.T) {
			s := startServer(t, Options{AllowEIO3: true}, false)
			c, _, rec := wsOpen(t, s, tt.eio)
			c.write(tt.packet)
			if ev := rec.waitClose(t); ev.reason != "transport error" || !errors.Is(ev.err, errHeartbeatDirection) {
				t.Errorf("closed with %q (%v), want transport error (heartbeat direction)", ev.reason, ev.err)
			}
		})
	}
}

func TestWebSocketEcho(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode, AllowEIO3: true}, true)
			c, _, rec := wsOpen(t, s, 4)
			big := "4" + strings.Repeat("é", 40000) // frames over 65535 bytes
			for _, msg := range []string{"4hello", "4", big} {
				c.write(msg)
				if got := c.readText(); got != msg {
					t.Fatalf("echo of %d bytes: got %d bytes", len(msg), len(got))
				}
			}
			c.writeBinary([]byte{0, 1, 2})
			if typ, got := c.read(); typ != websocket.BinaryMessage || got != "\x00\x01\x02" {
				t.Errorf("binary echo: %d %q", typ, got)
			}
			// A client close frame is answered and ends the session.
			_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			if code, _ := c.readClose(); code != websocket.CloseNormalClosure {
				t.Errorf("close answered with %d", code)
			}
			if ev := rec.waitClose(t); ev.reason != "transport close" {
				t.Errorf("closed with %q, want transport close", ev.reason)
			}
			waitFor(t, "session gone", func() bool { return s.Len() == 0 })

			// v3: binary frames carry the packet type.
			c3, _, _ := wsOpen(t, s, 3)
			c3.writeBinary([]byte{4, 9, 8})
			if typ, got := c3.read(); typ != websocket.BinaryMessage || got != "\x04\x09\x08" {
				t.Errorf("v3 binary echo: %d %q", typ, got)
			}
		})
	}
}

// TestWebSocketRawFrames sends frames through the real I/O engines over
// TCP, in pieces, and protocol errors.
func TestWebSocketRawFrames(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode, MaxBufferSize: 70000}, true)
			c := rawWSDial(t, s, "EIO=4&transport=websocket")
			if f, err := c.readFrame(); err != nil || !strings.HasPrefix(string(f.payload), "0{") {
				t.Fatalf("OPEN: %v %v", f, err)
			}
			rec := s.session(t)
			// A fragmented message of 66000 bytes with a ping in the
			// middle, written in small pieces.
			msg := "4" + strings.Repeat("z", 65999)
			stream := cat(clientFrame(false, opText, []byte(msg[:30000]), testKey), masked(opPing, "mid"),
				clientFrame(true, opContinuation, []byte(msg[30000:]), testKey))
			for len(stream) > 0 {
				n := min(len(stream), 7777)
				c.writeRaw(stream[:n])
				stream = stream[n:]
			}
			if f, err := c.readFrame(); err != nil || f.op != opPong || string(f.payload) != "mid" {
				t.Fatalf("want the pong first: %v %v", f, err)
			}
			if f, err := c.readFrame(); err != nil || f.op != opText || string(f.payload) != msg {
				t.Fatalf("echo: op %d, %d bytes, %v", f.op, len(f.payload), err)
			}
			// An unmasked frame fails the connection with 1002.
			c.writeRaw(clientFrame(true, opText, []byte("4x"), nil))
			f, err := c.readFrame()
			if err != nil || f.op != opClose || closeCode(f.payload) != closeProtocolError {
				t.Fatalf("after an unmasked frame: %v %v, want close 1002", f, err)
			}
			if ev := rec.waitClose(t); ev.reason != "transport error" {
				t.Errorf("closed with %q", ev.reason)
			}
			// The server half-closes after its close frame.
			if _, err := c.readFrame(); err != io.EOF {
				t.Errorf("after the close frame: %v, want EOF", err)
			}
		})
	}
}

// TestUpgrade: probe, 3probe, the pending GET released with NOOP, UPGRADE,
// and what was queued while polling delivered on the WebSocket, in order.
func TestUpgrade(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode}, true)
			c, rec := pollOpen(t, s, 4)
			pending := make(chan []string, 1)
			go func() { _, p := c.get(); pending <- p }()
			waitFor(t, "GET pending", rec.sess.Waiting)

			ws, _, err := wsDial(t, s.wsURL("EIO=4&transport=websocket&sid="+c.sid))
			if err != nil {
				t.Fatal(err)
			}
			ws.write("2probe")
			if got := ws.readText(); got != "3probe" {
				t.Fatalf("probe answered %q, want 3probe", got)
			}
			select {
			case p := <-pending:
				if fmt.Sprint(p) != "[6]" {
					t.Errorf("pending GET released with %q, want NOOP", p)
				}
			case <-time.After(waitTimeout):
				t.Fatal("the pending GET was not released")
			}
			if got := rec.sess.Transport(); got != "polling" {
				t.Errorf("Transport() during the probe = %q", got)
			}
			// Sent while the client has paused polling: queued.
			for i := range 3 {
				if err := rec.sess.Send(TextMessage(fmt.Appendf(nil, "4queued %d", i))); err != nil {
					t.Fatal(err)
				}
			}
			ws.write("5")
			select {
			case <-rec.upgraded:
			case <-time.After(waitTimeout):
				t.Fatal("OnUpgrade not called")
			}
			for i := range 3 {
				if got, want := ws.readText(), fmt.Sprintf("4queued %d", i); got != want {
					t.Errorf("on the WebSocket: %q, want %q", got, want)
				}
			}
			if got := rec.sess.Transport(); got != "websocket" {
				t.Errorf("Transport() = %q, want websocket", got)
			}
			ws.write("4after")
			if got := ws.readText(); got != "4after" {
				t.Errorf("echo after the upgrade: %q", got)
			}
			if r, _ := c.get(); r.status != 400 {
				t.Errorf("GET after the upgrade: %d %q, want 400", r.status, r.body)
			}
			if r := c.post("4x"); r.status != 400 {
				t.Errorf("POST after the upgrade: %d %q, want 400", r.status, r.body)
			}
			// A second WebSocket is accepted and closed, as in Node
			// (TestSecondWebSocketClosed).
			if ws2, _, err := wsDial(t, s.wsURL("EIO=4&transport=websocket&sid="+c.sid)); err != nil {
				t.Errorf("second WebSocket: %v, want it accepted, then closed", err)
			} else if code, before := ws2.readClose(); code != closeNoStatus || len(before) > 0 {
				t.Errorf("second WebSocket: close %d after %q, want an empty close frame at once", code, before)
			}
			st := s.Stats()
			if st.Upgrades != 1 || st.WebSocket != 1 || st.Polling != 0 {
				t.Errorf("stats %+v, want one upgrade, one websocket session", st)
			}
			if rec.isClosed() {
				t.Errorf("session closed: %v", rec.waitClose(t))
			}
		})
	}
}

// TestUpgradeAborted: a probe that never sends UPGRADE is dropped after
// UpgradeTimeout; one that sends garbage at once. The session goes on
// polling.
func TestUpgradeAborted(t *testing.T) {
	tests := []struct {
		name  string
		write string // "" writes nothing after the probe
	}{
		{"timeout", ""},
		{"garbage", "9"},
		{"message instead of upgrade", "4x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{UpgradeTimeout: 200 * time.Millisecond}, true)
			c, rec := pollOpen(t, s, 4)
			ws, _, err := wsDial(t, s.wsURL("EIO=4&transport=websocket&sid="+c.sid))
			if err != nil {
				t.Fatal(err)
			}
			ws.write("2probe")
			if got := ws.readText(); got != "3probe" {
				t.Fatalf("probe answered %q", got)
			}
			if tt.write != "" {
				ws.write(tt.write)
			}
			_ = ws.conn.SetReadDeadline(time.Now().Add(waitTimeout))
			if _, _, err := ws.conn.ReadMessage(); err == nil {
				t.Fatal("probe WebSocket still open")
			}
			// The session still polls.
			if r := c.post("4still"); r.body != "ok" {
				t.Fatalf("POST after the aborted upgrade: %d %q", r.status, r.body)
			}
			for {
				_, p := c.get()
				if fmt.Sprint(p) == "[4still]" {
					break
				}
				if fmt.Sprint(p) != "[6]" {
					t.Fatalf("GET = %q", p)
				}
			}
			if rec.isClosed() || rec.sess.Transport() != "polling" {
				t.Error("the aborted upgrade ended the polling session")
			}
		})
	}
}

// TestGracefulCloseWebSocket: Close delivers what is queued and its last
// packets, then a 1000 close frame.
func TestGracefulCloseWebSocket(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode}, false)
			c, _, rec := wsOpen(t, s, 4)
			var want []string
			for i := range 100 {
				msg := fmt.Sprintf("4queued %d", i)
				want = append(want, msg)
				if err := rec.sess.Send(TextMessage([]byte(msg))); err != nil {
					t.Fatal(err)
				}
			}
			rec.sess.Close("bye", TextMessage([]byte("4last")))
			want = append(want, "4last")
			if err := rec.sess.Send(TextMessage([]byte("4too late"))); !errors.Is(err, ErrClosed) {
				t.Errorf("Send after Close: %v, want ErrClosed", err)
			}
			code, got := c.readClose()
			if code != websocket.CloseNormalClosure {
				t.Errorf("close code %d, want 1000", code)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("before the close frame: %q, want %q", got, want)
			}
			if ev := rec.waitClose(t); ev.reason != "bye" {
				t.Errorf("closed with %q, want bye", ev.reason)
			}
			waitFor(t, "session gone", func() bool { return s.Len() == 0 })
		})
	}
}

// TestGracefulClosePolling: the last packets in one response, CLOSE in the
// next, then the session is gone.
func TestGracefulClosePolling(t *testing.T) {
	t.Run("queued", func(t *testing.T) {
		s := startServer(t, Options{}, false)
		c, rec := pollOpen(t, s, 4)
		_ = rec.sess.Send(TextMessage([]byte("4a")))
		rec.sess.Close("bye", TextMessage([]byte("4b")))
		if _, p := c.get(); fmt.Sprint(p) != "[4a 4b]" {
			t.Errorf("first GET after Close = %q, want [4a 4b]", p)
		}
		if _, p := c.get(); fmt.Sprint(p) != "[1]" {
			t.Errorf("second GET after Close = %q, want CLOSE", p)
		}
		if r, _ := c.get(); r.status != 400 || parseError(t, r).Code != codeUnknownSID {
			t.Errorf("GET after the CLOSE: %d %q, want 400 code 1", r.status, r.body)
		}
		if ev := rec.waitClose(t); ev.reason != "bye" {
			t.Errorf("closed with %q", ev.reason)
		}
	})
	t.Run("pending GET", func(t *testing.T) {
		s := startServer(t, Options{}, false)
		c, rec := pollOpen(t, s, 4)
		got := make(chan []string, 1)
		go func() { _, p := c.get(); got <- p }()
		waitFor(t, "GET pending", rec.sess.Waiting)
		rec.sess.Close("bye")
		if p := <-got; fmt.Sprint(p) != "[1]" {
			t.Errorf("pending GET = %q, want CLOSE", p)
		}
		waitFor(t, "session gone", func() bool { return s.Len() == 0 })
	})
	t.Run("client never polls again", func(t *testing.T) {
		s := startServer(t, Options{CloseTimeout: 100 * time.Millisecond}, false)
		_, rec := pollOpen(t, s, 4)
		rec.sess.Close("bye", TextMessage([]byte("4unread")))
		waitFor(t, "session forgotten after CloseTimeout", func() bool { return s.Len() == 0 })
	})
}

func TestServerClose(t *testing.T) {
	s := startServer(t, Options{}, false)
	ws, _, wsRec := wsOpen(t, s, 4)
	pc, pollRec := pollOpen(t, s, 4)
	s.Close()
	s.Close() // harmless
	if code, _ := ws.readClose(); code != websocket.CloseNormalClosure {
		t.Errorf("websocket close code %d", code)
	}
	if _, p := pc.get(); fmt.Sprint(p) != "[1]" {
		t.Errorf("poll after Close = %q, want CLOSE", p)
	}
	for _, rec := range []*recorder{wsRec, pollRec} {
		if ev := rec.waitClose(t); ev.reason != "forced close" {
			t.Errorf("closed with %q, want forced close", ev.reason)
		}
	}
	waitFor(t, "sessions gone", func() bool { return s.Len() == 0 })
	if r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil); r.status == 200 {
		t.Errorf("handshake after Close: %d %q", r.status, r.body)
	}
}

// TestQueueOverflow: a client that does not read lets its queue fill; the
// handler is told and closes the session.
func TestQueueOverflow(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		msg  Message
		fits int // messages that fit
	}{
		{"packets", Options{MaxQueuedPackets: 5}, TextMessage([]byte("4x")), 5},
		// A packet costs its bytes and its bookkeeping (queueEntryCost).
		{"bytes", Options{MaxQueuedBytes: 4*(25+queueEntryCost) + 10}, TextMessage([]byte("4" + strings.Repeat("x", 24))), 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts, false)
			c, rec := pollOpen(t, s, 4)
			for i := range tt.fits {
				if err := rec.sess.Send(tt.msg); err != nil {
					t.Fatalf("Send %d: %v", i, err)
				}
			}
			if rec.sess.TrySend(tt.msg) {
				t.Error("TrySend queued behind waiting packets")
			}
			if err := rec.sess.Send(tt.msg); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("Send over the bound: %v, want ErrQueueFull", err)
			}
			select {
			case <-rec.overflow:
			case <-time.After(waitTimeout):
				t.Fatal("OnQueueOverflow not called")
			}
			if ev := rec.waitClose(t); ev.reason != "overflow" {
				t.Errorf("closed with %q", ev.reason)
			}
			// The queue was dropped: the client gets CLOSE.
			if _, p := c.get(); fmt.Sprint(p) != "[1]" {
				t.Errorf("GET = %q, want CLOSE", p)
			}
			if got := s.Stats().Overflows; got != 1 {
				t.Errorf("Stats().Overflows = %d", got)
			}
		})
	}
}

// TestSendAll: the messages of SendAll are queued together or not at all.
func TestSendAll(t *testing.T) {
	s := startServer(t, Options{MaxQueuedPackets: 3}, false)
	c, rec := pollOpen(t, s, 4)
	if err := rec.sess.SendAll(TextMessage([]byte("451-[\"x\",{\"_placeholder\":true,\"num\":0}]")), BinaryMessage([]byte{1})); err != nil {
		t.Fatal(err)
	}
	if _, p := c.get(); len(p) != 2 || p[1] != "bAQ==" {
		t.Errorf("GET = %q", p)
	}
	if !rec.sess.TrySend(TextMessage([]byte("4v"))) {
		t.Error("TrySend on an empty queue failed")
	}
	if err := rec.sess.SendAll(TextMessage([]byte("4a")), TextMessage([]byte("4b")), TextMessage([]byte("4c"))); !errors.Is(err, ErrQueueFull) {
		t.Errorf("SendAll over the bound: %v", err)
	}
}

func TestMaxSessions(t *testing.T) {
	s := startServer(t, Options{MaxSessions: 2}, false)
	pollOpen(t, s, 4)
	_, _, rec := wsOpen(t, s, 4)
	r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("third session: %d %q, want 503", r.status, r.body)
	}
	if e := parseError(t, r); e.Code != codeBadRequest || e.Message != "Too many connections" {
		t.Errorf("error %+v", e)
	}
	if _, resp, err := wsDial(t, s.wsURL("EIO=4&transport=websocket")); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("third session over WebSocket: %v, want 503", err)
	}
	rec.sess.Close("make room")
	waitFor(t, "room made", func() bool { return s.Len() == 1 })
	if r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil); r.status != 200 {
		t.Errorf("after a close: %d %q, want 200", r.status, r.body)
	}
	if got := s.Stats().Refused[503]; got != 2 {
		t.Errorf("Stats().Refused[503] = %d, want 2", got)
	}
}

// TestHandlerOrder: messages reach the handler one at a time, in order,
// whichever goroutine reads them (POSTs one after the other, or a reader).
func TestHandlerOrder(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: m.mode}, false)
			c, _, rec := wsOpen(t, s, 4)
			const n = 2000
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range n {
					if err := c.conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "4%d", i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
			for i := range n {
				if got := rec.message(t); got.data != fmt.Sprint(i) {
					t.Fatalf("message %d = %q", i, got.data)
				}
			}
			wg.Wait()
			// A Do runs after the messages in progress.
			done := make(chan struct{})
			rec.sess.Do(func() { close(done) })
			<-done
		})
	}
}

// TestSessionRequest: the session keeps what it needs of the handshake.
func TestSessionRequest(t *testing.T) {
	s := startServer(t, Options{}, false)
	r := do(t, nil, "GET", s.url("EIO=4&transport=polling&token=abc"), "", http.Header{"X-Test": {"yes"}})
	if r.status != 200 {
		t.Fatal(r.body)
	}
	req := s.session(t).sess.Request()
	if req.URL.Query().Get("token") != "abc" || req.Header.Get("X-Test") != "yes" || req.RemoteAddr == "" || req.Secure || req.Time.IsZero() {
		t.Errorf("Request() = %+v", req)
	}
}

// TestV3Base64BinaryWebSocket: a v3 client that asked for b64 gets binary
// as "b4…" text frames over WebSocket too.
func TestV3Base64BinaryWebSocket(t *testing.T) {
	s := startServer(t, Options{AllowEIO3: true}, false)
	r := do(t, nil, "GET", s.url("EIO=3&transport=polling&b64=1"), "", nil)
	packets, err := decodePayloadV3Text([]byte(r.body))
	if err != nil || len(packets) != 1 {
		t.Fatalf("handshake %q: %v", r.body, err)
	}
	sid := parseOpen(t, "0"+string(packets[0].data)).SID
	rec := s.session(t)
	ws, _, err := wsDial(t, s.wsURL("EIO=3&transport=websocket&sid="+sid))
	if err != nil {
		t.Fatal(err)
	}
	ws.write("2probe")
	if got := ws.readText(); got != "3probe" {
		t.Fatal(got)
	}
	ws.write("5")
	<-rec.upgraded
	_ = rec.sess.Send(BinaryMessage([]byte{1, 2}))
	if got := ws.readText(); got != "b4"+base64.StdEncoding.EncodeToString([]byte{1, 2}) {
		t.Errorf("got %q, want b4 and base64", got)
	}
}

// blockingHandler blocks in OnMessage for its first message until
// released.
type blockingHandler struct {
	entered, release chan struct{}
	msgs             chan string
	once             sync.Once
}

func (h *blockingHandler) OnMessage(data []byte, _ bool) {
	h.once.Do(func() {
		close(h.entered)
		<-h.release
	})
	h.msgs <- string(data)
}
func (h *blockingHandler) OnQueueOverflow()      {}
func (h *blockingHandler) OnClose(string, error) {}

// TestPostAfterOK: a client sends its next POST as soon as it has the
// "ok" of the previous one (socket.io-client does); it must never be taken
// for an overlapping POST, however long the handler of the previous
// packets takes.
func TestPostAfterOK(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}), release: make(chan struct{}), msgs: make(chan string, 2)}
	srv := NewServer(Options{Logger: testLogger(t)}, func(*Session) SessionHandler { return h })
	ts := httptest.NewServer(srv)
	defer ts.Close()
	defer srv.Close()
	s := &testServer{Server: srv, ts: ts}
	r := do(t, nil, "GET", s.url("EIO=4&transport=polling"), "", nil)
	url := s.url("EIO=4&transport=polling&sid=" + parseOpen(t, r.body).SID)
	type result struct{ first, second response }
	done := make(chan result, 1)
	// Each POST on its own connection, as a browser's pool may send them
	// (on one keep-alive connection, net/http would read the second
	// request only once the first handler returned).
	noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		var res result
		res.first = do(t, noKeepAlive, "POST", url, "4a", nil)
		res.second = do(t, noKeepAlive, "POST", url, "4b", nil) // at once
		done <- res
	}()
	<-h.entered
	var res result
	select {
	case res = <-done: // answered while the handler still runs
		close(h.release)
	case <-time.After(100 * time.Millisecond):
		close(h.release)
		res = <-done
	}
	if res.first.body != "ok" || res.second.body != "ok" {
		t.Fatalf("POSTs answered %d %q and %d %q, want ok twice", res.first.status, res.first.body, res.second.status, res.second.body)
	}
	for _, want := range []string{"a", "b"} {
		select {
		case got := <-h.msgs:
			if got != want {
				t.Errorf("message %q, want %q", got, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("message %q not handled", want)
		}
	}
}
