package engineio

// Tests of WebSocket compression (permessage-deflate, deflate.go): the
// negotiation, compressed frames in and out, the bound on what a
// compressed message inflates to, and a broadcast compressed once.

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// clientDeflate compresses msg as a client does (no context takeover),
// without the sync flush's tail.
func clientDeflate(tb testing.TB, msg []byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(msg)
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	b := buf.Bytes()
	if !bytes.HasSuffix(b, deflateTail) {
		tb.Fatalf("sync flush without its tail: %x", b)
	}
	return b[:len(b)-4]
}

// rsv1 sets RSV1 (compressed) on a client frame.
func rsv1(frame []byte) []byte {
	frame[0] |= 0x40
	return frame
}

// inflateAll inflates a compressed payload without bound, as a client does.
func inflateAll(tb testing.TB, z []byte) string {
	tb.Helper()
	r := flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(inflateTail)))
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("inflate %x: %v", z, err)
	}
	return string(b)
}

func TestDeflateNegotiation(t *testing.T) {
	cases := []struct {
		name, offer string
		accept      bool
	}{
		{"no offer", "", false},
		{"bare", "permessage-deflate", true},
		{"Chromium and Node's ws", "permessage-deflate; client_max_window_bits", true},
		{"client window value", "permessage-deflate; client_max_window_bits=10", true},
		{"quoted value", `permessage-deflate; client_max_window_bits="10"`, true},
		{"gorilla", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", true},
		{"Firefox", "permessage-deflate", true},
		{"server window 15", "permessage-deflate; server_max_window_bits=15", true},
		{"server window smaller than flate's", "permessage-deflate; server_max_window_bits=10", false},
		{"second offer acceptable", "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", true},
		{"server window without value", "permessage-deflate; server_max_window_bits", false},
		{"client window out of range", "permessage-deflate; client_max_window_bits=16", false},
		{"client window not canonical", "permessage-deflate; client_max_window_bits=09", false},
		{"unknown parameter", "permessage-deflate; mem_level=8", false},
		{"value on a flag", "permessage-deflate; server_no_context_takeover=1", false},
		{"repeated parameter", "permessage-deflate; client_no_context_takeover; client_no_context_takeover", false},
		{"other extension", "x-webkit-deflate-frame", false},
		{"after another extension", "foo, permessage-deflate", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.offer != "" {
				h.Set("Sec-WebSocket-Extensions", tc.offer)
			}
			if got := negotiateDeflate(h); got != tc.accept {
				t.Fatalf("negotiateDeflate(%q) = %v, want %v", tc.offer, got, tc.accept)
			}
		})
	}

	// Over a real handshake: the answer, with compression on and off.
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("handshake PerMessageDeflate=%v", on), func(t *testing.T) {
			s := startServer(t, Options{PerMessageDeflate: on}, false)
			for _, tc := range cases {
				c, resp := rawWSDialExt(t, s, "EIO=4&transport=websocket", tc.offer)
				got := resp.Header.Get("Sec-WebSocket-Extensions")
				want := ""
				if on && tc.accept {
					want = deflateResponse
				}
				if got != want {
					t.Errorf("offer %q: answered extensions %q, want %q", tc.offer, got, want)
				}
				_ = c.conn.Close()
			}
			if got, want := s.Stats().DeflateNegotiated, uint64(0); !on && got != want {
				t.Errorf("DeflateNegotiated = %d with compression off", got)
			}
		})
	}
}

// rawWSDialExt is rawWSDial with a Sec-WebSocket-Extensions offer (none
// when empty); it returns the handshake's answer too.
func rawWSDialExt(tb testing.TB, s *testServer, query, ext string) (*rawWS, *http.Response) {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", s.ts.Listener.Addr().String(), waitTimeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET /?" + query + " HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + k + "\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	req += "\r\n"
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := conn.Write([]byte(req)); err != nil {
		tb.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		tb.Fatalf("websocket handshake: %s", resp.Status)
	}
	return &rawWS{tb: tb, conn: conn, br: br}, resp
}

// TestDeflateFrames feeds compressed frames to the reader of a connection
// that negotiated compression (and one that did not).
func TestDeflateFrames(t *testing.T) {
	const limit = 4096
	text := func(s string) recorded { return recorded{s, false} }
	z := func(s string) []byte { return clientDeflate(t, []byte(s)) }
	long := "4" + strings.Repeat("chat message ", 300)
	zl := z(long)
	third := len(zl) / 3
	cases := []struct {
		name    string
		off     bool // compression not negotiated
		in      []byte
		want    []recorded
		code    int  // the close code written, 0 for none
		pong    bool // a pong is written (uncompressed)
		closing bool
	}{
		{name: "compressed text", in: rsv1(clientFrame(true, opText, z("4hello"), testKey)), want: []recorded{text("hello")}},
		{name: "compressed binary", in: rsv1(clientFrame(true, opBinary, z("\x01\x02\x03"), testKey)), want: []recorded{{"\x01\x02\x03", true}}},
		{name: "uncompressed beside compressed", in: cat(masked(opText, "4plain"), rsv1(clientFrame(true, opText, z("4deflated"), testKey))),
			want: []recorded{text("plain"), text("deflated")}},
		{name: "each message on its own (no context takeover)", in: cat(rsv1(clientFrame(true, opText, z("4same"), testKey)), rsv1(clientFrame(true, opText, z("4same"), testKey))),
			want: []recorded{text("same"), text("same")}},
		{name: "fragmented, a ping between fragments", in: cat(
			rsv1(clientFrame(false, opText, zl[:third], testKey)),
			clientFrame(false, opContinuation, zl[third:2*third], testKey),
			masked(opPing, "p"),
			clientFrame(true, opContinuation, zl[2*third:], testKey)),
			want: []recorded{text(long[1:])}, pong: true},
		{name: "RSV1 on a continuation", in: cat(clientFrame(false, opText, []byte("4a"), testKey), rsv1(clientFrame(true, opContinuation, z("b"), testKey))),
			code: closeProtocolError, closing: true},
		{name: "RSV1 on a ping", in: rsv1(masked(opPing, "p")), code: closeProtocolError, closing: true},
		{name: "RSV1 on a close", in: rsv1(masked(opClose, "\x03\xe8")), code: closeProtocolError, closing: true},
		{name: "RSV1 not negotiated", off: true, in: rsv1(clientFrame(true, opText, z("4hello"), testKey)), code: closeProtocolError, closing: true},
		{name: "RSV2", in: func() []byte { f := masked(opText, "4a"); f[0] |= 0x20; return f }(), code: closeProtocolError, closing: true},
		{name: "corrupt data", in: rsv1(clientFrame(true, opText, []byte{0xff, 0xff, 0xff, 0xff}, testKey)), code: closeInvalidPayload, closing: true},
		{name: "not UTF-8 once inflated", in: rsv1(clientFrame(true, opText, z("4\xff"), testKey)), code: closeInvalidPayload, closing: true},
		{name: "inflates to the limit", in: rsv1(clientFrame(true, opText, z("4"+strings.Repeat("a", limit-1)), testKey)),
			want: []recorded{text(strings.Repeat("a", limit-1))}},
		{name: "inflates one byte over the limit", in: rsv1(clientFrame(true, opText, z("4"+strings.Repeat("a", limit)), testKey)),
			code: closeMessageTooBig, closing: true},
		{name: "deflate bomb", in: rsv1(clientFrame(true, opText, z("4"+strings.Repeat("\x00", 1<<20)), testKey)),
			code: closeMessageTooBig, closing: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, sizes := range [][]int{nil, {1, 2, 3, 7, 100}} {
				h := newFrameHarness(t, Options{MaxBufferSize: limit, PerMessageDeflate: true}, 4, discardLogger())
				h.c.deflate = !tc.off
				h.feed(tc.in, sizes...)
				o := h.outcome(t)
				h.stop()
				if fmt.Sprint(o.msgs) != fmt.Sprint(tc.want) {
					t.Fatalf("chunks %v: messages %v, want %v (%v)", sizes, o.msgs, tc.want, o)
				}
				if got := o.closeCode(); got != tc.code {
					t.Fatalf("chunks %v: close code %d, want %d (%v)", sizes, got, tc.code, o)
				}
				if o.closed != tc.closing {
					t.Fatalf("chunks %v: session closed %v, want %v (%v)", sizes, o.closed, tc.closing, o)
				}
				pong := false
				for _, f := range o.written {
					if f.rsv1 {
						t.Fatalf("control frame op%d written compressed", f.op)
					}
					pong = pong || f.op == opPong
				}
				if pong != tc.pong {
					t.Fatalf("chunks %v: pong written %v, want %v", sizes, pong, tc.pong)
				}
			}
		})
	}
}

// TestDeflateBombCost checks what a deflate bomb costs the server: a
// message that inflates to 64 MiB, refused with 1009 once it passes
// MaxBufferSize, allocates about twice MaxBufferSize while inflated, and
// leaves nothing behind.
func TestDeflateBombCost(t *testing.T) {
	const limit = 1_000_000
	bomb := rsv1(clientFrame(true, opText, clientDeflate(t, append([]byte{'4'}, make([]byte, 16<<20)...)), testKey))
	if len(bomb) > limit/10 {
		t.Fatalf("the bomb is %d bytes compressed", len(bomb))
	}
	h := newFrameHarness(t, Options{MaxBufferSize: limit, PerMessageDeflate: true}, 4, discardLogger())
	h.c.deflate = true
	defer h.stop()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	h.feed(bomb)
	runtime.ReadMemStats(&after)
	o := h.outcome(t)
	if o.closeCode() != closeMessageTooBig || !o.closed || len(o.msgs) != 0 {
		t.Fatalf("bomb: %v, want close 1009 and no message", o)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(3*limit+len(bomb)+(256<<10)) {
		t.Fatalf("inflating the bomb allocated %d bytes, want at most about 3 × MaxBufferSize (%d)", alloc, limit)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 512<<10 {
		t.Fatalf("heap in use grew by %d bytes after the bomb was refused", grew)
	}
}

// deflateConns builds n WebSocket connections (over fake sockets) of
// sessions of one server; those with deflate[i] negotiated compression.
func deflateConns(tb testing.TB, opts Options, deflate ...bool) (*Server, *fakeIO, []*wsConn, []*fakeRaw) {
	tb.Helper()
	opts.PerMessageDeflate = true
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	srv := NewServer(opts, nil)
	fio := &fakeIO{}
	var conns []*wsConn
	var raws []*fakeRaw
	for _, d := range deflate {
		sess := newSession(srv, newID(), 4, httptest.NewRequest("GET", "/", nil))
		sess.handler = nopHandler{}
		raw := &fakeRaw{}
		c := &wsConn{sess: sess, io: fio, raw: raw, deflate: d}
		sess.ws = c
		conns = append(conns, c)
		raws = append(raws, raw)
		tb.Cleanup(func() {
			sess.close("test over", nil, false, nil)
			fio.runFlushes()
			c.release()
		})
	}
	return srv, fio, conns, raws
}

// TestDeflateSend checks what a connection that negotiated compression
// writes: messages from the threshold up compressed, smaller ones and
// those marked Uncompressed as they are, control frames never; and a
// broadcast compressed once for all its recipients.
func TestDeflateSend(t *testing.T) {
	big := TextMessage([]byte("4" + strings.Repeat(`{"user":"alice","text":"hello"}`, 40)))
	bin := BinaryMessage(bytes.Repeat([]byte{1, 2, 3, 4}, 400))
	// The cache is direct-mapped: two payloads in one slot evict each
	// other, and the count of compressions below would be 4 (1 run in
	// 128 failed that way). Take a bin that lands in another slot.
	for slotOf(bin.b) == slotOf(big.b) {
		bin = BinaryMessage(bytes.Repeat([]byte{1, 2, 3, 4}, 400))
	}
	small := TextMessage([]byte("4hi"))
	srv, fio, conns, raws := deflateConns(t, Options{}, true, true, false)
	for _, c := range conns {
		for _, m := range []Message{big, small, big.Uncompressed(), bin} {
			if err := c.sess.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		c.sess.mu.Lock()
		c.queueCtrlLocked(opPong, []byte("p"))
		c.sess.mu.Unlock()
	}
	fio.runFlushes()
	type want struct {
		op   byte
		rsv1 bool
		data string
	}
	compressedWant := []want{{opPong, false, "p"}, {opText, true, string(big.b)}, {opText, false, "4hi"},
		{opText, false, string(big.b)}, {opBinary, true, string(bin.b)}}
	var payloads [][]byte
	for i, raw := range raws {
		frames := raw.frames(t)
		var got []want
		for _, f := range frames {
			data := string(f.payload)
			if f.rsv1 {
				payloads = append(payloads, f.payload)
				data = inflateAll(t, f.payload)
			}
			got = append(got, want{f.op, f.rsv1, data})
		}
		w := compressedWant
		if !conns[i].deflate {
			w = []want{{opPong, false, "p"}, {opText, false, string(big.b)}, {opText, false, "4hi"},
				{opText, false, string(big.b)}, {opBinary, false, string(bin.b)}}
		}
		if fmt.Sprint(got) != fmt.Sprint(w) {
			t.Fatalf("connection %d (deflate %v) wrote %v, want %v", i, conns[i].deflate, got, w)
		}
	}
	if len(payloads) != 4 || !bytes.Equal(payloads[0], payloads[2]) || !bytes.Equal(payloads[1], payloads[3]) {
		t.Fatalf("the two compressed connections got different frames")
	}
	if runs := srv.deflateCache.runs.Load(); runs != 2 {
		t.Fatalf("compressed %d times for 2 messages sent to 2 connections, want 2 (once each)", runs)
	}
	st := srv.Stats()
	if st.DeflatedMessages != 4 || st.DeflatedFrom != uint64(2*len(big.b)+2*len(bin.b)) || st.DeflatedTo >= st.DeflatedFrom/4 {
		t.Fatalf("stats: %d messages compressed, %d bytes to %d", st.DeflatedMessages, st.DeflatedFrom, st.DeflatedTo)
	}

	t.Run("threshold", func(t *testing.T) {
		for _, tc := range []struct {
			threshold int
			msg       string
			rsv1      bool
		}{
			{0, "4" + strings.Repeat("a", 1022), false}, // 1023 bytes, under Node's default
			{0, "4" + strings.Repeat("a", 1023), true},
			{-1, "4", true},
			{10, "4123456789", true},
			{10, "412345678", false},
		} {
			_, fio, conns, raws := deflateConns(t, Options{PerMessageDeflateThreshold: tc.threshold}, true)
			_ = conns[0].sess.Send(TextMessage([]byte(tc.msg)))
			fio.runFlushes()
			f := raws[0].frames(t)
			if len(f) != 1 || f[0].rsv1 != tc.rsv1 {
				t.Fatalf("threshold %d, message of %d bytes: frames %+v, want compressed %v", tc.threshold, len(tc.msg), f, tc.rsv1)
			}
			if f[0].rsv1 && inflateAll(t, f[0].payload) != tc.msg {
				t.Fatalf("inflated to %q, want %q", inflateAll(t, f[0].payload), tc.msg)
			}
		}
	})

	t.Run("v3 binary", func(t *testing.T) {
		_, fio, conns, raws := deflateConns(t, Options{AllowEIO3: true}, true)
		conns[0].sess.protocol = 3
		_ = conns[0].sess.Send(bin)
		fio.runFlushes()
		f := raws[0].frames(t)
		if len(f) != 1 || !f[0].rsv1 || f[0].op != opBinary || inflateAll(t, f[0].payload) != "\x04"+string(bin.b) {
			t.Fatalf("v3 binary message: frames %+v", f)
		}
	})
}

// TestDeflateGorilla chats with gorilla/websocket's compression (which
// asks for no context takeover on both sides) over both I/O engines:
// compressed messages flow both ways.
func TestDeflateGorilla(t *testing.T) {
	for _, m := range ioModes {
		t.Run(m.name, func(t *testing.T) {
			s := startServer(t, Options{PerMessageDeflate: true, IOMode: m.mode}, true)
			d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: true}
			conn, resp, err := d.Dial(s.wsURL("EIO=4&transport=websocket"), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != deflateResponse {
				t.Fatalf("extensions %q, want %q", got, deflateResponse)
			}
			c := &wsClient{tb: t, conn: conn}
			c.readText() // OPEN
			conn.EnableWriteCompression(true)
			rec := s.session(t)
			for _, msg := range []string{"4" + strings.Repeat("compress me ", 200), "4short"} {
				c.write(msg)
				if got := rec.message(t); got.data != msg[1:] {
					t.Fatalf("server received %q, want %q", got.data, msg[1:])
				}
				if got := c.readText(); got != msg {
					t.Fatalf("echo %q, want %q", got, msg)
				}
			}
			st := s.Stats()
			if st.DeflateNegotiated != 1 || st.DeflatedMessages != 1 {
				t.Fatalf("stats: %d negotiated, %d messages compressed; want 1 and 1 (the long echo)", st.DeflateNegotiated, st.DeflatedMessages)
			}
		})
	}
}

// TestDeflateIdleHeap measures the heap of idle WebSocket sessions that
// negotiated compression, against sessions that did not: with no context
// takeover a connection keeps no compression state, so the two are the
// same, where a flate writer per connection would add hundreds of KB each.
func TestDeflateIdleHeap(t *testing.T) {
	const n = 400
	heapPer := func(deflate bool) float64 {
		srv := NewServer(Options{PerMessageDeflate: true, Logger: discardLogger()}, func(sess *Session) SessionHandler {
			return echoHandler{sess}
		})
		ts := httptest.NewServer(srv)
		defer func() { srv.Close(); ts.Close() }()
		url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/?EIO=4&transport=websocket"
		var conns []*websocket.Conn
		// Twice: the pools' victims (flate writers and readers, shared
		// by all connections, not per connection) go with the second.
		runtime.GC()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			d := websocket.Dialer{HandshakeTimeout: waitTimeout, EnableCompression: deflate}
			conn, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatal(err)
			}
			conn.EnableWriteCompression(deflate)
			c := &wsClient{tb: t, conn: conn}
			c.readText() // OPEN
			msg := "4" + strings.Repeat("x", 2000)
			c.write(msg) // compressed both ways, when negotiated
			if got := c.readText(); got != msg {
				t.Fatalf("echo of %d bytes, want %d", len(got), len(msg))
			}
			conns = append(conns, conn)
		}
		// The server's deflateCache keeps the last 128 messages it
		// compressed, whoever they went to: bounded whatever the number of
		// connections, not counted here.
		for i := range srv.deflateCache.slots {
			sl := &srv.deflateCache.slots[i]
			sl.mu.Lock()
			sl.src, sl.z = nil, nil
			sl.mu.Unlock()
		}
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if st := srv.Stats(); deflate && st.DeflatedMessages != n {
			t.Fatalf("%d messages compressed, want %d", st.DeflatedMessages, n)
		}
		for _, c := range conns {
			_ = c.Close()
		}
		// Client and server sides both: gorilla keeps no compression state
		// between messages either.
		// (HeapAlloc: the live bytes; HeapInuse adds the spans' slack,
		// which varies by kilobytes per connection from run to run.)
		return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	}
	deflated := heapPer(true)
	plain := heapPer(false)
	t.Logf("live heap per idle connection (client and server): %.0f B uncompressed, %.0f B with permessage-deflate", plain, deflated)
	// An absolute bound, not the difference of two measurements: goroutines
	// of earlier tests (and of the first measurement) that end meanwhile
	// free memory and can make either figure low, even negative. The state
	// a compressed connection would keep if it were kept is far bigger than
	// the bound: a flate writer costs 800 KB to 1.2 MB, a reader's window
	// 32 KiB.
	const bound = 24 << 10
	if deflated > bound {
		t.Fatalf("an idle connection with compression takes %.0f B of heap (%.0f B without), want < %d: compression state kept per connection", deflated, plain, bound)
	}
}

// echoHandler sends back what its session receives.
type echoHandler struct{ s *Session }

func (h echoHandler) OnMessage(data []byte, binary bool) {
	if binary {
		_ = h.s.Send(BinaryMessage(data))
		return
	}
	_ = h.s.Send(TextMessage(append([]byte{typeMessage}, data...)))
}
func (echoHandler) OnQueueOverflow()      {}
func (echoHandler) OnClose(string, error) {}

func FuzzInflate(f *testing.F) {
	f.Add(clientDeflate(f, []byte("4hello")))
	f.Add(clientDeflate(f, make([]byte, 10000)))
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, z []byte) {
		const limit = 4096
		out, err := inflate(z, limit)
		if err == nil && len(out) > limit {
			t.Fatalf("inflated %d bytes, over the limit %d", len(out), limit)
		}
		// What the server compresses, it inflates back.
		if len(z) <= limit {
			back, err := inflate(deflate(nil, z), limit)
			if err != nil || !bytes.Equal(back, z) {
				t.Fatalf("deflate then inflate of %x: %x, %v", z, back, err)
			}
		}
	})
}

// FuzzWebSocketDeflateFrames is FuzzWebSocketFrames on a connection that
// negotiated compression: the reader never hands on more than
// MaxBufferSize, nor text that is not UTF-8, however the input is cut.
func FuzzWebSocketDeflateFrames(f *testing.F) {
	z := func(s string) []byte { return clientDeflate(f, []byte(s)) }
	zl := z("4" + strings.Repeat("fragment ", 100))
	for i, s := range [][]byte{
		rsv1(clientFrame(true, opText, z("4hello"), testKey)),
		rsv1(clientFrame(true, opBinary, z("\x01\x02"), testKey)),
		fuzzStream(rsv1(clientFrame(false, opText, zl[:10], testKey)), masked(opPing, "p"), clientFrame(true, opContinuation, zl[10:], testKey)),
		rsv1(clientFrame(true, opText, z("4"+strings.Repeat("\x00", 10000)), testKey)),
		rsv1(masked(opPing, "p")),
		rsv1(clientFrame(true, opText, []byte{0xff, 0x00}, testKey)),
	} {
		f.Add(s, []byte{byte(i + 1), 3, 1})
	}
	f.Fuzz(func(t *testing.T, data, chunks []byte) {
		if len(data) > 1<<16 {
			return
		}
		var sizes []int
		for _, c := range chunks {
			sizes = append(sizes, int(c)+1)
		}
		run := func(sizes ...int) outcome {
			h := newFrameHarness(t, Options{MaxBufferSize: 4096, PerMessageDeflate: true}, 4, discardLogger())
			h.c.deflate = true
			defer h.stop()
			h.feed(data, sizes...)
			return h.outcome(t)
		}
		whole := run()
		if chunked := run(sizes...); whole.String() != chunked.String() {
			t.Fatalf("read whole: %v; in chunks %v: %v", whole, sizes, chunked)
		}
		for _, m := range whole.msgs {
			if len(m.data) > 4096 {
				t.Fatalf("message of %d bytes handed on, over MaxBufferSize", len(m.data))
			}
		}
		for _, fr := range whole.written {
			if fr.rsv1 {
				t.Fatalf("control frame op%d written compressed", fr.op)
			}
		}
	})
}

// Benchmark messages: a chat message as the tutorial sends it, and a JSON
// document of about 10 kB (a list of users with their profiles).
var (
	benchChat = []byte(`42["chat message","hello everyone, anyone up for lunch at noon?",1742]`)
	benchJSON = func() []byte {
		r := mrand.New(mrand.NewPCG(1, 2))
		names := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
		var b strings.Builder
		b.WriteString(`42["users",[`)
		for i := 0; b.Len() < 10_000; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%d,"name":%q,"online":%v,"joined":"2026-%02d-%02dT%02d:%02d:00Z","rooms":["general","random"],"score":%d}`,
				r.IntN(1e6), names[r.IntN(len(names))], r.IntN(2) == 0, 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(10000))
		}
		b.WriteString("]]")
		return []byte(b.String())
	}()
)

// BenchmarkDeflate measures compressing one message at flate's levels:
// CPU per message and the bytes it takes on the wire (wire-B/op, the
// compressed payload; the frame header adds 2–4 bytes either way).
func BenchmarkDeflate(b *testing.B) {
	for _, msg := range []struct {
		name string
		b    []byte
	}{{"chat", benchChat}, {"json10k", benchJSON}} {
		for _, level := range []int{flate.BestSpeed, flate.DefaultCompression} {
			b.Run(fmt.Sprintf("%s/level=%d", msg.name, level), func(b *testing.B) {
				var buf bytes.Buffer
				w, _ := flate.NewWriter(&buf, level)
				b.SetBytes(int64(len(msg.b)))
				b.ReportAllocs()
				for b.Loop() {
					buf.Reset()
					w.Reset(&buf)
					_, _ = w.Write(msg.b)
					_ = w.Flush()
				}
				b.ReportMetric(float64(buf.Len()-4), "wire-B/op")
				b.ReportMetric(float64(len(msg.b)), "raw-B/op")
			})
		}
	}
}

// BenchmarkInflate measures inflating a client's compressed message.
func BenchmarkInflate(b *testing.B) {
	for _, msg := range []struct {
		name string
		b    []byte
	}{{"chat", benchChat}, {"json10k", benchJSON}} {
		b.Run(msg.name, func(b *testing.B) {
			z := clientDeflate(b, msg.b)
			b.SetBytes(int64(len(msg.b)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := inflate(z, 1_000_000); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFlushDeflate measures the flush path for a broadcast to 100
// connections: a new message (one Message shared by all) is queued for
// each and their flushes run; ns/op and allocs are per delivery (one
// message to one connection). Compressed, the first flush compresses the
// message and the 99 others reuse its frame.
func BenchmarkFlushDeflate(b *testing.B) {
	const conns = 100
	for _, msg := range []struct {
		name string
		b    []byte
	}{{"chat", benchChat}, {"json10k", benchJSON}} {
		for _, mode := range []struct {
			name      string
			deflate   bool
			threshold int
		}{{"off", false, 0}, {"on", true, -1}} {
			b.Run(fmt.Sprintf("%s/deflate=%s", msg.name, mode.name), func(b *testing.B) {
				flags := make([]bool, conns)
				for i := range flags {
					flags[i] = mode.deflate
				}
				srv, fio, cs, raws := deflateConns(b, Options{PerMessageDeflateThreshold: mode.threshold}, flags...)
				for _, r := range raws {
					r.discard = true
				}
				b.ReportAllocs()
				var written int64
				for i := 0; b.Loop(); i++ {
					if i%conns == 0 {
						// A new broadcast: its own bytes, as a new packet has.
						m := TextMessage(bytes.Clone(msg.b))
						for _, c := range cs {
							_ = c.sess.Send(m)
						}
					}
					c := cs[i%conns]
					c.flush()
					fio.mu.Lock()
					fio.pending = fio.pending[:0]
					fio.mu.Unlock()
				}
				for _, r := range raws {
					written += r.n
				}
				_ = srv
				b.ReportMetric(float64(written)/float64(b.N), "wire-B/op")
			})
		}
	}
}

// BenchmarkContextTakeoverHeap measures what context takeover would cost
// per connection: the heap of a flate writer kept for each (the server's
// side of context takeover; the client's would keep a 32 KiB window and
// a reader per connection).
func BenchmarkContextTakeoverHeap(b *testing.B) {
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression} {
		b.Run(fmt.Sprintf("writer/level=%d", level), func(b *testing.B) {
			const n = 50
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				ws := make([]*flate.Writer, n)
				for i := range ws {
					ws[i], _ = flate.NewWriter(io.Discard, level)
					_, _ = ws[i].Write(benchChat)
					_ = ws[i].Flush()
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(ws)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/conn")
			}
		})
	}
	b.Run("reader", func(b *testing.B) {
		const n = 50
		z := clientDeflate(b, benchChat)
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			rs := make([]io.ReadCloser, n)
			for i := range rs {
				rs[i] = flate.NewReader(io.MultiReader(bytes.NewReader(z), bytes.NewReader(inflateTail)))
				_, _ = io.ReadAll(rs[i])
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(rs)
			b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/n, "heap-B/conn")
		}
	})
}

// FuzzNegotiateDeflate feeds the extension negotiation arbitrary
// Sec-WebSocket-Extensions headers: it never panics, accepts only an offer
// named permessage-deflate, and decides as a reference parser does.
func FuzzNegotiateDeflate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		`permessage-deflate; client_max_window_bits="10", x-webkit-deflate-frame`,
		"permessage-deflate; server_max_window_bits=10, permessage-deflate",
		"permessage-deflate;;", "permessage-deflate; =", ", ,", "permessage-deflate; client_max_window_bits=+9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		h := http.Header{"Sec-Websocket-Extensions": {header}}
		got := negotiateDeflate(h)
		if got && !strings.Contains(header, "permessage-deflate") {
			t.Fatalf("accepted %q, which offers no permessage-deflate", header)
		}
		want := false
		for offer := range strings.SplitSeq(header, ",") {
			want = want || refAcceptable(offer)
		}
		if got != want {
			t.Fatalf("negotiateDeflate(%q) = %v, the reference says %v", header, got, want)
		}
	})
}

// refAcceptable is a plain restatement of the rules of
// acceptableDeflateOffer.
func refAcceptable(offer string) bool {
	parts := strings.Split(offer, ";")
	if strings.TrimSpace(parts[0]) != "permessage-deflate" {
		return false
	}
	count := map[string]int{}
	for _, p := range parts[1:] {
		kv := strings.SplitN(strings.TrimSpace(p), "=", 2)
		name := strings.TrimSpace(kv[0])
		count[name]++
		if count[name] > 1 {
			return false
		}
		val := ""
		if len(kv) == 2 {
			val = strings.Trim(strings.TrimSpace(kv[1]), `"`)
		}
		bits := map[string]bool{"8": true, "9": true, "10": true, "11": true, "12": true, "13": true, "14": true, "15": true}
		switch {
		case (name == "server_no_context_takeover" || name == "client_no_context_takeover") && len(kv) == 1:
		case name == "client_max_window_bits" && (len(kv) == 1 || bits[val]):
		case name == "server_max_window_bits" && len(kv) == 2 && val == "15":
		default:
			return false
		}
	}
	return true
}
