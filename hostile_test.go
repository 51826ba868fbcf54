package main

// Hostile input against the chat server: malformed and abusive
// packets, oversized bodies and frames, foreign origins, connection limits,
// half-open sessions and TCP resets. Each test checks that only the sending
// session is affected (it gets the protocol's error and is closed), that the
// server logs the refusal, and that another client keeps chatting with normal
// latency. Clients are raw: gorilla/websocket and net/http.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// hostileLatency is the most a chat round trip may take while the server is
// under attack (the race detector slows everything down several times).
const hostileLatency = 2 * time.Second

// hostileConnect opens a raw Socket.IO client of the chat over WebSocket,
// joined to the main namespace.
func hostileConnect(tb testing.TB, ts *testServer) *confWS {
	tb.Helper()
	w, resp, err := confDial(tb, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), nil)
	if err != nil {
		tb.Fatalf("dial: %v (%v)", err, resp)
	}
	confParseOpen(tb, w.text(5*time.Second))
	w.send("40")
	if got := w.text(5 * time.Second); !strings.HasPrefix(got, `40{"sid":`) {
		tb.Fatalf("CONNECT answer %q", got)
	}
	return w
}

var hostileProbeSeq atomic.Int64

// hostileProbe sends a chat message from c and waits until it comes back
// (the chat sends every message to everyone), skipping other traffic, and
// fails if that takes longer than hostileLatency.
func hostileProbe(tb testing.TB, c *confWS) time.Duration {
	tb.Helper()
	id := fmt.Sprintf("probe-%d", hostileProbeSeq.Add(1))
	start := time.Now()
	c.send(`42["user-message","` + id + `"]`)
	for {
		_, b := c.next(hostileLatency - time.Since(start))
		if strings.Contains(string(b), id) {
			return time.Since(start)
		}
	}
}

// hostileNested returns n opening brackets, inner, and n closing ones.
func hostileNested(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// TestHostilePackets: packets that must be refused close the sending
// session, with a log line; the server stays responsive meanwhile.
func TestHostilePackets(t *testing.T) {
	ts := startTestServer(t, nil)
	observer := hostileConnect(t, ts)
	deepArray := `42["user-message",` + hostileNested("[", "]", 50_000, "0") + `]`
	deepObject := `42["user-message",` + hostileNested(`{"a":`, "}", 50_000, "0") + `]`
	cases := []struct {
		name        string
		text        string
		attachments [][]byte
	}{
		{"50000 nested arrays", deepArray, nil},
		{"50000 nested objects", deepObject, nil},
		{"50000 nested arrays in a binary event", `451-["user-message",` + hostileNested("[", "]", 50_000, `{"_placeholder":true,"num":0}`) + `]`, [][]byte{{1}}},
		{"placeholder num beyond the attachments", `451-["user-message",{"_placeholder":true,"num":5}]`, [][]byte{{1, 2, 3}}},
		{"attachment count 1000000", `451000000-["user-message",{"_placeholder":true,"num":0}]`, [][]byte{{1}}},
		{"attachment count 11", `4511-["user-message",{"_placeholder":true,"num":0}]`, [][]byte{{1}}},
		{"attachment count overflowing uint64", `4599999999999999999999-["user-message"]`, nil},
		{"text while attachments are awaited", `452-["user-message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]`, nil},
		{"attachment without a binary packet", "", [][]byte{{1, 2}}},
		{"event before CONNECT of its namespace", `42/other,["user-message","x"]`, nil},
		{"not a Socket.IO packet", `4/other,["user-message","x"]`, nil},
		{"reserved event name", `42["disconnect"]`, nil},
		{"ack id of 30 digits", `42123456789012345678901234567890["user-message","x"]`, nil},
		{"namespace of 1000 bytes", "40/" + strings.Repeat("n", 1000) + ",", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := hostileConnect(t, ts)
			// Write errors are ignored: the server may close as soon as it
			// has read the header.
			if tc.text != "" {
				_ = w.c.WriteMessage(websocket.TextMessage, []byte(tc.text))
			}
			for _, a := range tc.attachments {
				_ = w.c.WriteMessage(websocket.BinaryMessage, a)
			}
			if tc.name == "text while attachments are awaited" {
				_ = w.c.WriteMessage(websocket.TextMessage, []byte(`42["user-message","sneaky"]`))
			}
			w.closed(3 * time.Second)
			if d := hostileProbe(t, observer); d > hostileLatency {
				t.Errorf("round trip %v after the attack", d)
			}
		})
	}
	if !confLogged(ts.Log, `msg="refused packet"`, len(cases)) {
		t.Errorf("%d refused packet log lines, want one per case (%d)", strings.Count(ts.Log.String(), `msg="refused packet"`), len(cases))
	}
}

// TestHostileHeavyButLegal: payloads that are valid JSON but expensive (deep
// under Go's 10000-level limit, huge arrays, wide objects) may be accepted,
// rejected or dropped, but the server answers another client in time while
// ten of them arrive at once, over both transports.
func TestHostileHeavyButLegal(t *testing.T) {
	ts := startTestServer(t, nil)
	observer := hostileConnect(t, ts)
	wide := make([]string, 50_000)
	for i := range wide {
		wide[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	payloads := map[string]string{
		"9000 nested arrays":     `42["user-message",` + hostileNested("[", "]", 9000, "0") + `]`,
		"array of 300000 zeros":  `42["user-message",[` + strings.TrimSuffix(strings.Repeat("0,", 300_000), ",") + `]]`,
		"object of 50000 keys":   `42["user-message",{` + strings.Join(wide, ",") + `}]`,
		"900 KB string":          `42["user-message","` + strings.Repeat("x", 900_000) + `"]`,
		"100000 event arguments": `42["user-message"` + strings.Repeat(",1", 100_000) + `]`,
	}
	for name, payload := range payloads {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%2 == 0 {
						w, _, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), nil)
						if err != nil {
							t.Error(err)
							return
						}
						_ = w.c.WriteMessage(websocket.TextMessage, []byte("40"))
						_ = w.c.WriteMessage(websocket.TextMessage, []byte(payload))
						return
					}
					hostileRawPost(ts, "40\x1e"+payload)
				}()
			}
			wg.Wait()
			if d := hostileProbe(t, observer); d > hostileLatency {
				t.Errorf("round trip %v while the payloads were handled", d)
			}
		})
	}
}

// hostileRawPost opens a polling session and posts body to it, without
// failing the test (it runs on other goroutines).
func hostileRawPost(ts *testServer, body string) {
	resp, err := http.Get(ts.URL + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var o confOpen
	if len(b) == 0 || json.Unmarshal(b[1:], &o) != nil {
		return
	}
	resp, err = http.Post(ts.URL+"/socket.io/?EIO=4&transport=polling&sid="+url.QueryEscape(o.Sid), "text/plain;charset=UTF-8", strings.NewReader(body))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// hostilePollOpen opens a long-polling session of the chat (no namespace).
func hostilePollOpen(tb testing.TB, ts *testServer) *confPoll {
	tb.Helper()
	s := &confServer{URL: ts.URL, hc: &http.Client{Timeout: 10 * time.Second}}
	return s.pollOpen(tb, "/socket.io/")
}

// hostileGone reports whether the polling session was closed: a GET answers
// 400 or carries a CLOSE packet.
func hostileGone(tb testing.TB, p *confPoll) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	resp, err := p.s.hc.Do(req)
	if err != nil {
		return false // still polling when the time was up: open
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusBadRequest ||
		(resp.StatusCode == 200 && strings.Contains("\x1e"+string(body)+"\x1e", "\x1e1\x1e"))
}

// hostileChunked is an io.Reader of n bytes of a JSON string body that
// net/http must send chunked (its size is unknown).
type hostileChunked struct{ left int }

func (r *hostileChunked) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), r.left)
	for i := range n {
		p[i] = 'x'
	}
	r.left -= n
	return n, nil
}

// hostilePost sends body to a polling session and returns the status, or 0
// when the server closed the connection before answering.
func hostilePost(tb testing.TB, p *confPoll, body io.Reader, contentLength int64) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url, body)
	if err != nil {
		tb.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	resp, err := p.s.hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHostileBodyLimit: polling bodies over maxHttpBufferSize get 413 with a
// JSON body and close the session, whether announced by Content-Length or
// chunked; the server reads no more than the limit, so memory stays flat.
func TestHostileBodyLimit(t *testing.T) {
	const limit = 64 << 10
	ts := startTestServer(t, func(c *chat.Config) { c.MaxHTTPBufferSize = limit })
	observer := hostileConnect(t, ts)

	t.Run("at the limit is accepted", func(t *testing.T) {
		p := hostilePollOpen(t, ts)
		body := `40` + "\x1e" + `42["user-message","` + strings.Repeat("y", limit-len(`40`+"\x1e"+`42["user-message",""]`)) + `"]`
		if status, got := p.post(body); status != 200 || got != "ok" {
			t.Fatalf("POST of exactly %d bytes = %d %q, want 200 ok", len(body), status, got)
		}
	})
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			p := hostilePollOpen(t, ts)
			size := 4 * limit
			length := int64(size)
			if chunked {
				length = -1
			}
			status, body := hostilePost(t, p, &hostileChunked{left: size}, length)
			switch status {
			case http.StatusRequestEntityTooLarge:
				confErrorBody(t, body, 3)
			case 0: // the server answered 413 and closed before the client finished sending
			default:
				t.Fatalf("POST of %d bytes = %d %q, want 413", size, status, body)
			}
			if !hostileGone(t, p) {
				t.Fatal("session still open after an oversized body")
			}
		})
	}
	t.Run("memory stays flat", func(t *testing.T) {
		const n, size = 24, 4 << 20
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			p := hostilePollOpen(t, ts)
			length := int64(size)
			if i%2 == 1 {
				length = -1
			}
			if status, body := hostilePost(t, p, &hostileChunked{left: size}, length); status != 413 && status != 0 {
				t.Fatalf("POST = %d %q", status, body)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%d bodies of %d MB: %.1f MB allocated by client and server together, heap in use %+.1f MB",
			n, size>>20, float64(alloc)/(1<<20), (float64(after.HeapInuse)-float64(before.HeapInuse))/(1<<20))
		if alloc > n*size/4 {
			t.Errorf("allocated %d bytes for %d bytes of bodies, want far less (the server must stop reading at the limit)", alloc, n*size)
		}
	})
	if d := hostileProbe(t, observer); d > hostileLatency {
		t.Errorf("round trip %v", d)
	}
	if !strings.Contains(ts.Log.String(), `reason="body over maxHttpBufferSize`) ||
		!strings.Contains(ts.Log.String(), `reason="body of 262144 bytes, over maxHttpBufferSize`) {
		t.Error("no log line for the refused bodies")
	}
}

// TestHostileSlowBody: a polling body that trickles in is cut off after
// pingInterval+pingTimeout with a 400, instead of holding the request open.
func TestHostileSlowBody(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.PingInterval = 300 * time.Millisecond
		c.PingTimeout = 200 * time.Millisecond
	})
	p := hostilePollOpen(t, ts)
	u, _ := url.Parse(p.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n40", u.RequestURI(), u.Host)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a POST whose body stalls: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled POST = %d %q after %v, want 400 after about 500ms", resp.StatusCode, body, time.Since(start))
	}
	confErrorBody(t, string(body), 3)
	if !strings.Contains(ts.Log.String(), "body not received within 500ms") {
		t.Error("no log line for the stalled body")
	}
}

// TestHostileFrameLimit: a WebSocket message over maxHttpBufferSize, in one
// frame, in fragments, or announced by a huge frame header, is answered with
// close code 1009 and ends the session.
func TestHostileFrameLimit(t *testing.T) {
	const limit = 64 << 10
	ts := startTestServer(t, func(c *chat.Config) { c.MaxHTTPBufferSize = limit })
	observer := hostileConnect(t, ts)
	frame := func(final bool, opcode byte, payloadLen uint64) []byte {
		// A masked client frame header with a 64-bit length and a zero mask.
		h := []byte{opcode, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		if final {
			h[0] |= 0x80
		}
		for i := range 8 {
			h[2+i] = byte(payloadLen >> (56 - 8*i))
		}
		return h
	}
	cases := []struct {
		name string
		send func(w *confWS) error
	}{
		{"one frame of limit+1 bytes", func(w *confWS) error {
			return w.c.WriteMessage(websocket.TextMessage, []byte("4"+strings.Repeat("z", limit)))
		}},
		{"fragments adding up to more", func(w *confWS) error {
			wr, err := w.c.NextWriter(websocket.BinaryMessage)
			if err != nil {
				return err
			}
			for range 8 {
				if _, err := wr.Write(make([]byte, limit/4)); err != nil {
					return nil // the server may close before the last fragment
				}
			}
			_ = wr.Close()
			return nil
		}},
		{"a header announcing 1 TB", func(w *confWS) error {
			_, err := w.c.NetConn().Write(frame(true, websocket.BinaryMessage, 1<<40))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := hostileConnect(t, ts)
			if err := tc.send(w); err != nil {
				t.Fatal(err)
			}
			err := w.closed(3 * time.Second)
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("connection ended with %v, want close code 1009", err)
			}
		})
	}
	t.Run("a message of exactly the limit is accepted", func(t *testing.T) {
		w := hostileConnect(t, ts)
		msg := `42["user-message","` + strings.Repeat("q", limit-len(`42["user-message",""]`)) + `"]`
		w.send(msg)
		if got := w.text(5 * time.Second); !strings.HasPrefix(got, `42["message","qqq`) {
			t.Fatalf("got %.40q, want the message back", got)
		}
	})
	if d := hostileProbe(t, observer); d > hostileLatency {
		t.Errorf("round trip %v", d)
	}
	if !confLogged(ts.Log, "read limit exceeded", 3) {
		t.Error("no log line for the oversized frames")
	}
}

// TestHostileOrigins: a browser request, polling or WebSocket, from an origin
// that is not allowed gets 403; same-origin and Origin-less requests pass;
// -cors-origin adds origins and * allows all.
func TestHostileOrigins(t *testing.T) {
	type check struct {
		origin string
		want   int
	}
	cases := []struct {
		name   string
		cors   []string
		checks func(self string) []check
	}{
		{"default", nil, func(self string) []check {
			port := self[strings.LastIndexByte(self, ':')+1:]
			return []check{
				{"", 200},
				{"http://" + self, 200},
				{"HTTP://" + strings.ToUpper(self), 200},
				{"https://" + self, 200}, // only we serve pages from our host and port
				{"ftp://" + self, 403},
				{"http://evil.example", 403},
				{"http://localhost:" + port, 403},
				{"http://127.0.0.1:1", 403},
				{"http://" + self + ".evil.example", 403},
				{"null", 403},
				{"not a url", 403},
			}
		}},
		{"-cors-origin adds", []string{"https://good.example", "http://also.example:8080"}, func(self string) []check {
			return []check{
				{"https://good.example", 200},
				{"http://also.example:8080", 200},
				{"http://also.example", 403},
				{"https://good.example.evil.example", 403},
				{"http://" + self, 200},
				{"http://evil.example", 403},
			}
		}},
		{"* allows all", []string{"*"}, func(self string) []check {
			return []check{{"http://evil.example", 200}, {"null", 200}, {"", 200}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTestServer(t, func(c *chat.Config) {
				c.CORSOrigins = tc.cors
				c.AllowedHosts = []string{"chat.example"} // the public name, behind a proxy (below)
			})
			hc := &http.Client{Timeout: 10 * time.Second}
			for _, c := range tc.checks(ts.Addr) {
				req, _ := http.NewRequest(http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", nil)
				if c.origin != "" {
					req.Header.Set("Origin", c.origin)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Errorf("polling with Origin %q = %d, want %d", c.origin, resp.StatusCode, c.want)
				}
				if c.want == 403 {
					confErrorBody(t, string(body), 4)
				}

				h := http.Header{}
				if c.origin != "" {
					h.Set("Origin", c.origin)
				}
				w, resp, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), h)
				switch {
				case c.want == 200 && err != nil:
					t.Errorf("WebSocket with Origin %q: %v, want it open", c.origin, err)
				case c.want == 403 && (err == nil || resp == nil || resp.StatusCode != 403):
					t.Errorf("WebSocket with Origin %q: %v, want 403", c.origin, err)
				case w != nil:
					_ = w.c.Close()
				}
			}
			if tc.cors == nil {
				// Behind a proxy that terminates TLS: plain HTTP, the browser's Host.
				for origin, want := range map[string]int{"https://chat.example": 200, "https://chat.example:8443": 403, "http://evil.example": 403} {
					req, _ := http.NewRequest(http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", nil)
					req.Host = "chat.example"
					req.Header.Set("Origin", origin)
					resp, err := hc.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != want {
						t.Errorf("behind a TLS proxy, Origin %q = %d, want %d", origin, resp.StatusCode, want)
					}
				}
			}
			if tc.cors == nil && !strings.Contains(ts.Log.String(), "refused cross-origin request") {
				t.Error("no log line for the refused origins")
			}
		})
	}
}

// TestHostileMaxConnections: beyond -max-connections new sessions get 503
// with a JSON body, over polling and WebSocket alike; upgrading a session
// that exists is not a new one; room frees up when a session ends.
func TestHostileMaxConnections(t *testing.T) {
	const max = 4
	ts := startTestServer(t, func(c *chat.Config) { c.MaxConnections = max })
	polls := []*confPoll{hostilePollOpen(t, ts), hostilePollOpen(t, ts)}
	sockets := []*confWS{hostileConnect(t, ts), hostileConnect(t, ts)}

	hc := &http.Client{Timeout: 10 * time.Second}
	status, body := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", "")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("polling handshake beyond the limit = %d %q, want 503", status, body)
	}
	confErrorBody(t, body, 3)
	if _, resp, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("WebSocket handshake beyond the limit: %v, want 503", err)
	}

	// Upgrading a polling session at the limit works.
	up, resp, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket&sid="+url.QueryEscape(polls[0].open.Sid)), nil)
	if err != nil {
		t.Fatalf("upgrade at the limit: %v (%v)", err, resp)
	}
	up.send("2probe")
	if got := up.text(5 * time.Second); got != "3probe" {
		t.Fatalf("probe answer %q", got)
	}

	// A session ends: a new one fits again.
	_ = sockets[0].c.Close()
	confEventually(t, 5*time.Second, "room for a new session", func() bool {
		status, _ := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", "")
		return status == 200
	})
	if !strings.Contains(ts.Log.String(), `reason="4 sessions open, the limit"`) {
		t.Error("no log line for the refused handshakes")
	}
}

// TestHostileConnectTimeout: a session that joins no namespace is closed after
// connectTimeout, over WebSocket and polling; one that did join stays.
func TestHostileConnectTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ts := startTestServer(t, func(c *chat.Config) {
		c.ConnectTimeout = timeout
		c.PingInterval = 10 * time.Second
		c.PingTimeout = 5 * time.Second
	})
	start := time.Now()
	joined := hostileConnect(t, ts)
	idle, _, err := confDial(t, confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket"), nil)
	if err != nil {
		t.Fatal(err)
	}
	confParseOpen(t, idle.text(5*time.Second))
	poll := hostilePollOpen(t, ts)
	pending := poll.goGet()

	idle.closed(5 * time.Second)
	if e := time.Since(start); e < timeout-50*time.Millisecond || e > timeout+2*time.Second {
		t.Errorf("idle WebSocket closed after %v, want about %v", e, timeout)
	}
	if got := <-pending; got[0] != "200" || got[1] != "1" {
		t.Errorf("pending GET of an idle polling session = %v, want 200 1 (CLOSE)", got)
	}
	if d := hostileProbe(t, joined); d > hostileLatency {
		t.Errorf("the joined client's round trip %v", d)
	}
}

// hostileBaseline reads the goroutine count and the heap in use after a GC.
func hostileBaseline() (int, uint64) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return runtime.NumGoroutine(), m.HeapInuse
}

// TestHostileNoLeaks: 1000 half-open sessions (polling handshakes and
// WebSockets that never join a namespace nor answer pings) and 500 abrupt
// TCP resets (WebSockets after CONNECT, pending polling GETs) leave no
// goroutines and no memory behind once the timeouts have run.
func TestHostileNoLeaks(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) {
		c.ConnectTimeout = 300 * time.Millisecond
		c.PingInterval = 300 * time.Millisecond
		c.PingTimeout = 200 * time.Millisecond
	})
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	handshake := func() string {
		status, body := confDo(t, hc, http.MethodGet, ts.URL+"/socket.io/?EIO=4&transport=polling", "")
		if status != 200 {
			t.Errorf("handshake = %d %q", status, body)
			return ""
		}
		return confParseOpen(t, body).Sid
	}
	rst := func(c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		_ = c.Close()
	}
	// Warm up what is allocated once (pools, the bundle, timers).
	_ = handshake()
	hostileProbe(t, hostileConnect(t, ts))
	tr.CloseIdleConnections()
	baseG, baseHeap := hostileBaseline()

	var (
		mu    sync.Mutex
		conns []*websocket.Conn
	)
	work := func(n int, job func(i int)) {
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					job(i)
				}
			}()
		}
		wg.Wait()
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	wsURL := confWSURL(ts.URL, "/socket.io/", "EIO=4&transport=websocket")
	work(1000, func(i int) {
		if i%2 == 0 {
			handshake() // half-open polling session: never polls again
			return
		}
		c, _, err := d.Dial(wsURL, nil) // half-open WebSocket: no CONNECT, no pongs
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		conns = append(conns, c)
		mu.Unlock()
	})
	work(500, func(i int) {
		if i%2 == 0 {
			c, _, err := d.Dial(wsURL, nil)
			if err != nil {
				t.Error(err)
				return
			}
			_ = c.WriteMessage(websocket.TextMessage, []byte("40"))
			_, _, _ = c.ReadMessage() // OPEN
			rst(c.NetConn())
			return
		}
		sid := handshake()
		u, _ := url.Parse(ts.URL)
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Error(err)
			return
		}
		fmt.Fprintf(c, "GET /socket.io/?EIO=4&transport=polling&sid=%s HTTP/1.1\r\nHost: %s\r\n\r\n", sid, u.Host)
		rst(c)
	})
	_, peakHeap := hostileBaseline()
	peakG := runtime.NumGoroutine()
	for _, c := range conns {
		_ = c.Close()
	}
	tr.CloseIdleConnections()

	var g int
	var heap uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		g, heap = hostileBaseline()
		if g <= baseG+10 && heap <= baseHeap+8<<20 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("after 20s: %d goroutines (baseline %d), heap in use %d MB (baseline %d MB)\n%.8000s",
				g, baseG, heap>>20, baseHeap>>20, buf[:n])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("goroutines %d -> peak %d -> %d; heap in use %.1f MB -> peak %.1f MB -> %.1f MB",
		baseG, peakG, g, float64(baseHeap)/(1<<20), float64(peakHeap)/(1<<20), float64(heap)/(1<<20))
	if d := hostileProbe(t, hostileConnect(t, ts)); d > hostileLatency {
		t.Errorf("round trip %v", d)
	}
}

// hostileJSON is used by the fuzz targets too: it reports whether b is an
// Engine.IO JSON error body.
func hostileJSON(b string) bool {
	var m map[string]any
	if json.Unmarshal([]byte(b), &m) != nil {
		return false
	}
	_, code := m["code"].(float64)
	_, msg := m["message"].(string)
	return code && msg && len(m) == 2
}
