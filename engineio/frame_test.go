package engineio

// Tests of the WebSocket frame reader (wsConn.handleRead, parseFrame,
// onFrame) on a wsConn over a fake connection: input is handed to
// handleRead as the I/O engines do, and what the server writes is parsed
// back.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// fakeIO is an ioEngine for one wsConn: flushes are recorded and run by
// the test (runFlushes), on its goroutine.
type fakeIO struct {
	mu      sync.Mutex
	pending []*wsConn
}

func (f *fakeIO) wrap(nc net.Conn, _ time.Duration) (ioEngine, rawConn, error) {
	return f, &fakeRaw{}, nil
}

func (f *fakeIO) register(*wsConn) error { return nil }
func (f *fakeIO) unregister(*wsConn)     {}

func (f *fakeIO) scheduleFlush(c *wsConn) {
	f.mu.Lock()
	f.pending = append(f.pending, c)
	f.mu.Unlock()
}

func (f *fakeIO) waitWritable(c *wsConn) { f.scheduleFlush(c) }

// runFlushes runs the scheduled flushes until none is left.
func (f *fakeIO) runFlushes() {
	for {
		f.mu.Lock()
		if len(f.pending) == 0 {
			f.mu.Unlock()
			return
		}
		c := f.pending[0]
		f.pending = f.pending[1:]
		f.mu.Unlock()
		c.flush()
	}
}

// fakeRaw is a rawConn that keeps what is written.
type fakeRaw struct {
	mu       sync.Mutex
	out      bytes.Buffer
	discard  bool // count, do not keep
	n        int64
	closed   bool
	shutdown bool
	bufs     []int  // the buffers of each writev, unless discard
	onWrite  func() // if set, called by each writev, without r.mu (a send during a write)
}

func (r *fakeRaw) writev(bufs [][]byte) (int, error) {
	r.mu.Lock()
	if !r.discard {
		r.bufs = append(r.bufs, len(bufs))
	}
	n := 0
	for _, b := range bufs {
		n += len(b)
		if !r.discard {
			r.out.Write(b)
		}
	}
	r.n += int64(n)
	onWrite := r.onWrite
	r.mu.Unlock()
	if onWrite != nil {
		onWrite()
	}
	return n, nil
}

func (r *fakeRaw) shutdownWrite() { r.mu.Lock(); r.shutdown = true; r.mu.Unlock() }
func (r *fakeRaw) close()         { r.mu.Lock(); r.closed = true; r.mu.Unlock() }

// frames parses what the server wrote.
func (r *fakeRaw) frames(tb testing.TB) []frame {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	rd := bytes.NewReader(r.out.Bytes())
	var out []frame
	for rd.Len() > 0 {
		f, err := readServerFrame(rd)
		if err != nil {
			tb.Fatalf("server wrote a bad frame: %v", err)
		}
		out = append(out, f)
	}
	return out
}

// frameHarness is a wsConn of an open session over a fake connection.
type frameHarness struct {
	c   *wsConn
	io  *fakeIO
	raw *fakeRaw
	rec *recorder
}

// newFrameHarness builds a session on a wsConn over a fake connection. It
// has no heartbeat timer; the test ends it with stop.
func newFrameHarness(tb testing.TB, opts Options, protocol int, logger *slog.Logger) *frameHarness {
	if opts.CloseTimeout == 0 {
		opts.CloseTimeout = time.Hour // the tests end the close handshake themselves
	}
	opts.Logger = logger
	srv := NewServer(opts, nil)
	sess := newSession(srv, newID(), protocol, httptest.NewRequest("GET", "/", nil))
	h := &frameHarness{io: &fakeIO{}, raw: &fakeRaw{}}
	h.rec = newRecorder(sess, false)
	sess.handler = h.rec
	h.c = &wsConn{sess: sess, io: h.io, raw: h.raw}
	sess.ws = h.c
	return h
}

// feed hands data to the reader in chunks of the given sizes (the rest in
// one last chunk), as reads from the socket would; it copies each chunk,
// since the reader unmasks in place. It reports false when the reader
// stopped.
func (h *frameHarness) feed(data []byte, sizes ...int) bool {
	for _, n := range sizes {
		n = min(n, len(data))
		if n == 0 {
			continue
		}
		if !h.c.handleRead(bytes.Clone(data[:n])) {
			return false
		}
		data = data[n:]
	}
	if len(data) > 0 {
		return h.c.handleRead(bytes.Clone(data))
	}
	return true
}

// stop ends the session and its connection (and their timers).
func (h *frameHarness) stop() {
	h.c.sess.close("test over", nil, false, nil)
	h.io.runFlushes()
	h.c.release()
}

// messages drains what the session received.
func (h *frameHarness) messages() []recorded {
	var out []recorded
	for {
		select {
		case m := <-h.rec.msgs:
			out = append(out, m)
		default:
			return out
		}
	}
}

// outcome is what a stream of frames did: the messages delivered, the
// frames the server wrote (pongs, close), how the session ended.
type outcome struct {
	msgs    []recorded
	written []frame
	closed  bool
	reason  string
}

func (h *frameHarness) outcome(tb testing.TB) outcome {
	// A close posted by the reader runs on the session's executor
	// goroutine: wait until it has run.
	waitFor(tb, "the session's handler calls", h.c.sess.exec.idle)
	h.io.runFlushes()
	o := outcome{msgs: h.messages(), written: h.raw.frames(tb), closed: h.rec.isClosed()}
	if o.closed {
		o.reason = h.rec.waitClose(tb).reason
	}
	return o
}

func (o outcome) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "msgs %v; wrote", o.msgs)
	for _, f := range o.written {
		if f.op == opClose {
			fmt.Fprintf(&b, " close(%d)", closeCode(f.payload))
		} else {
			fmt.Fprintf(&b, " op%d(%q)", f.op, f.payload)
		}
	}
	if o.closed {
		fmt.Fprintf(&b, "; closed %q", o.reason)
	}
	return b.String()
}

func (o outcome) closeCode() int {
	for _, f := range o.written {
		if f.op == opClose {
			return closeCode(f.payload)
		}
	}
	return 0
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestWebSocketFrames(t *testing.T) {
	text := func(s string) recorded { return recorded{s, false} }
	binMsg := func(s string) recorded { return recorded{s, true} }
	long := func(n int) string { return "4" + strings.Repeat("x", n-1) }
	otherKey := []byte{0, 0xff, 0x10, 0x80}
	tests := []struct {
		name      string
		max       int64 // MaxBufferSize; 0 is the default
		protocol  int
		in        []byte
		wantMsgs  []recorded
		wantPongs []string
		wantClose int    // the code of the server's close frame; 0: none
		wantEnd   string // the session's close reason; "": open
	}{
		{name: "text", in: masked(opText, "4hello"), wantMsgs: []recorded{text("hello")}},
		{name: "two frames in one read", in: cat(masked(opText, "4a"), masked(opText, "4b")), wantMsgs: []recorded{text("a"), text("b")}},
		{name: "binary v4", in: masked(opBinary, "\x00\x01"), wantMsgs: []recorded{binMsg("\x00\x01")}},
		{name: "binary v3 has a type byte", protocol: 3, in: masked(opBinary, "\x04\x00\x01"), wantMsgs: []recorded{binMsg("\x00\x01")}},
		{name: "other masking key", in: clientFrame(true, opText, []byte("4masked"), otherKey), wantMsgs: []recorded{text("masked")}},
		{name: "zero masking key", in: clientFrame(true, opText, []byte("4zero"), []byte{0, 0, 0, 0}), wantMsgs: []recorded{text("zero")}},
		{name: "length 125", in: masked(opText, long(125)), wantMsgs: []recorded{text(long(125)[1:])}},
		{name: "length 126", in: masked(opText, long(126)), wantMsgs: []recorded{text(long(126)[1:])}},
		{name: "length 65535", in: masked(opText, long(65535)), wantMsgs: []recorded{text(long(65535)[1:])}},
		{name: "length 65536", in: masked(opText, long(65536)), wantMsgs: []recorded{text(long(65536)[1:])}},
		{name: "length 65536 at the limit", max: 65536, in: masked(opText, long(65536)), wantMsgs: []recorded{text(long(65536)[1:])}},
		{name: "fragmented text", in: cat(clientFrame(false, opText, []byte("4hel"), testKey), clientFrame(false, opContinuation, []byte("l"), otherKey), clientFrame(true, opContinuation, []byte("o"), testKey)),
			wantMsgs: []recorded{text("hello")}},
		{name: "fragmented binary", in: cat(clientFrame(false, opBinary, []byte{1}, testKey), clientFrame(true, opContinuation, []byte{2}, testKey)),
			wantMsgs: []recorded{binMsg("\x01\x02")}},
		{name: "empty fragments", in: cat(clientFrame(false, opText, []byte("4"), testKey), clientFrame(false, opContinuation, nil, testKey), clientFrame(true, opContinuation, nil, testKey)),
			wantMsgs: []recorded{text("")}},
		{name: "utf-8 split across fragments", in: cat(clientFrame(false, opText, []byte("4\xe2\x82"), testKey), clientFrame(true, opContinuation, []byte("\xac"), testKey)),
			wantMsgs: []recorded{text("€")}},
		{name: "ping inside a fragmented message", in: cat(clientFrame(false, opText, []byte("4ab"), testKey), masked(opPing, "p1"), masked(opPong, "x"), clientFrame(true, opContinuation, []byte("cd"), testKey), masked(opText, "4e")),
			wantMsgs: []recorded{text("abcd"), text("e")}, wantPongs: []string{"p1"}},
		{name: "ping", in: masked(opPing, "hello"), wantPongs: []string{"hello"}},
		{name: "ping of 125 bytes", in: masked(opPing, strings.Repeat("p", 125)), wantPongs: []string{strings.Repeat("p", 125)}},
		{name: "unsolicited pong ignored", in: cat(masked(opPong, ""), masked(opText, "4x")), wantMsgs: []recorded{text("x")}},
		{name: "engine.io ping is not a websocket ping", protocol: 3, in: masked(opText, "2"), wantMsgs: nil},

		{name: "oversize frame", max: 100, in: masked(opText, long(101)), wantClose: closeMessageTooBig, wantEnd: "transport error"},
		{name: "oversize across fragments", max: 100, in: cat(clientFrame(false, opText, []byte(long(60)), testKey), clientFrame(true, opContinuation, bytes.Repeat([]byte("y"), 41), testKey)),
			wantClose: closeMessageTooBig, wantEnd: "transport error"},
		{name: "oversize refused from the header alone", max: 100, in: masked(opText, long(101))[:8], wantClose: closeMessageTooBig, wantEnd: "transport error"},
		{name: "unmasked", in: clientFrame(true, opText, []byte("4x"), nil), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "rsv1", in: func() []byte { b := masked(opText, "4x"); b[0] |= 0x40; return b }(), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "rsv3", in: func() []byte { b := masked(opText, "4x"); b[0] |= 0x10; return b }(), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "opcode 3", in: masked(3, "4x"), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "opcode 7", in: masked(7, ""), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "opcode 11", in: masked(0xB, ""), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "opcode 15", in: masked(0xF, ""), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "fragmented ping", in: clientFrame(false, opPing, nil, testKey), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "ping of 126 bytes", in: masked(opPing, strings.Repeat("p", 126)), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "continuation first", in: clientFrame(true, opContinuation, []byte("4x"), testKey), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "new message inside a fragmented one", in: cat(clientFrame(false, opText, []byte("4a"), testKey), masked(opText, "4b")), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "invalid utf-8 text", in: masked(opText, "4\xff"), wantClose: closeInvalidPayload, wantEnd: "transport error"},
		{name: "lone surrogate in text (wtf-8)", in: masked(opText, "4\xed\xa0\x80"), wantClose: closeInvalidPayload, wantEnd: "transport error"},
		{name: "invalid utf-8 across fragments", in: cat(clientFrame(false, opText, []byte("4\xe2\x82"), testKey), clientFrame(true, opContinuation, []byte("x"), testKey)),
			wantClose: closeInvalidPayload, wantEnd: "transport error"},
		{name: "invalid utf-8 in binary is fine", in: masked(opBinary, "\xff"), wantMsgs: []recorded{binMsg("\xff")}},
		{name: "engine.io parse error", in: masked(opText, "9"), wantClose: closeNormal, wantEnd: "parse error"},
		{name: "empty text is a parse error", in: masked(opText, ""), wantClose: closeNormal, wantEnd: "parse error"},
		{name: "v3 binary of unknown type", protocol: 3, in: masked(opBinary, "\x09"), wantClose: closeNormal, wantEnd: "parse error"},

		{name: "close 1000 echoed", in: cat(masked(opText, "4a"), masked(opClose, "\x03\xe8bye"), masked(opText, "4dropped")),
			wantMsgs: []recorded{text("a")}, wantClose: closeNormal, wantEnd: "transport close"},
		{name: "close 1001 echoed", in: masked(opClose, "\x03\xe9"), wantClose: 1001, wantEnd: "transport close"},
		{name: "empty close answered 1000", in: masked(opClose, ""), wantClose: closeNormal, wantEnd: "transport close"},
		{name: "close of one byte", in: masked(opClose, "\x03"), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "close reason not utf-8", in: masked(opClose, "\x03\xe8\xff"), wantClose: closeProtocolError, wantEnd: "transport error"},
		{name: "close inside a fragmented message", in: cat(clientFrame(false, opText, []byte("4a"), testKey), masked(opClose, "\x03\xe8")),
			wantClose: closeNormal, wantEnd: "transport close"},
		{name: "engine.io close packet", in: masked(opText, "1"), wantClose: closeNormal, wantEnd: "transport close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			protocol := tt.protocol
			if protocol == 0 {
				protocol = 4
			}
			run := func(sizes ...int) outcome {
				h := newFrameHarness(t, Options{MaxBufferSize: tt.max}, protocol, discardLogger())
				defer h.stop()
				h.feed(tt.in, sizes...)
				return h.outcome(t)
			}
			o := run()
			if fmt.Sprint(o.msgs) != fmt.Sprint(tt.wantMsgs) {
				t.Errorf("messages = %v, want %v (%v)", o.msgs, tt.wantMsgs, o)
			}
			var pongs []string
			for _, f := range o.written {
				if f.op == opPong {
					pongs = append(pongs, string(f.payload))
				}
			}
			if fmt.Sprint(pongs) != fmt.Sprint(tt.wantPongs) {
				t.Errorf("pongs = %q, want %q", pongs, tt.wantPongs)
			}
			if got := o.closeCode(); got != tt.wantClose {
				t.Errorf("close frame code = %d, want %d (%v)", got, tt.wantClose, o)
			}
			if o.reason != tt.wantEnd {
				t.Errorf("session end = %q, want %q", o.reason, tt.wantEnd)
			}
			// The reader must do the same whatever the reads' sizes: split
			// the input in two at every byte, and feed it byte by byte.
			if len(tt.in) > 2000 {
				for _, at := range []int{1, 2, 3, 4, 8, 9, 10, 13, 14, 15, len(tt.in) / 2, len(tt.in) - 1} {
					if got := run(at); got.String() != o.String() {
						t.Fatalf("split at %d: %v, whole: %v", at, got, o)
					}
				}
				return
			}
			for at := 1; at < len(tt.in); at++ {
				if got := run(at); got.String() != o.String() {
					t.Fatalf("split at %d: %v, whole: %v", at, got, o)
				}
			}
			ones := make([]int, len(tt.in))
			for i := range ones {
				ones[i] = 1
			}
			if got := run(ones...); got.String() != o.String() {
				t.Fatalf("byte by byte: %v, whole: %v", got, o)
			}
		})
	}
}

// TestWebSocketFrameLengthOverflow sends a continuation frame whose 64-bit
// length wraps around when added to the fragments already received.
func TestWebSocketFrameLengthOverflow(t *testing.T) {
	for _, length := range []uint64{1<<64 - 1, 1<<64 - 3, 1 << 63} {
		t.Run(fmt.Sprint(length), func(t *testing.T) {
			h := newFrameHarness(t, Options{MaxBufferSize: 1000}, 4, discardLogger())
			defer h.stop()
			first := clientFrame(false, opText, []byte("4abc"), testKey)
			hdr := []byte{0x80 | opContinuation, 0x80 | 127}
			hdr = binary.BigEndian.AppendUint64(hdr, length)
			hdr = append(hdr, testKey...)
			h.feed(cat(first, hdr, bytes.Repeat([]byte("z"), 32)))
			o := h.outcome(t)
			if o.closeCode() != closeMessageTooBig || o.reason != "transport error" {
				t.Errorf("got %v, want close 1009 and transport error", o)
			}
		})
	}
}

// TestWebSocketReaderStopsAfterClose checks that nothing is handed on once
// the connection failed.
func TestWebSocketReaderStopsAfterClose(t *testing.T) {
	h := newFrameHarness(t, Options{}, 4, discardLogger())
	defer h.stop()
	// After a protocol error the reader drains what the client still sends
	// (until it answers the close frame or goes away), and hands nothing on.
	h.feed(clientFrame(true, opText, []byte("4x"), nil))
	h.feed(masked(opText, "4after"))
	if o := h.outcome(t); len(o.msgs) != 0 {
		t.Errorf("messages after the failure: %v", o.msgs)
	}
}

// TestWebSocketCloseHandshake: the server closes (Session.Close), the
// client answers with its close frame, and the connection is released.
func TestWebSocketCloseHandshake(t *testing.T) {
	h := newFrameHarness(t, Options{}, 4, discardLogger())
	defer h.stop()
	s := h.c.sess
	if err := s.Send(TextMessage([]byte("4last"))); err != nil {
		t.Fatal(err)
	}
	s.Close("bye", TextMessage([]byte("4very last")))
	o := h.outcome(t)
	if len(o.written) != 3 || string(o.written[0].payload) != "4last" || string(o.written[1].payload) != "4very last" || o.closeCode() != closeNormal {
		t.Fatalf("server wrote %v, want 4last, 4very last, close 1000", o)
	}
	h.raw.mu.Lock()
	shut := h.raw.shutdown
	h.raw.mu.Unlock()
	if !shut {
		t.Error("write side not shut down after the close frame")
	}
	if h.feed(masked(opClose, "\x03\xe8")) {
		t.Error("reader went on after the client's answering close frame")
	}
	if !h.c.released.Load() {
		t.Error("connection not released after the close handshake")
	}
	if got := h.rec.waitClose(t).reason; got != "bye" {
		t.Errorf("close reason = %q, want bye", got)
	}
}

// streamPart is one piece of the fuzz target's frame stream.
func fuzzStream(seed ...[]byte) []byte { return cat(seed...) }

// FuzzWebSocketFrames feeds arbitrary bytes, in arbitrary chunks, to the
// frame reader of a session: it must never panic, must read the same
// messages whatever the chunks, and may hand on only valid messages.
func FuzzWebSocketFrames(f *testing.F) {
	seeds := [][]byte{
		masked(opText, "4hello"),
		fuzzStream(masked(opText, "4a"), masked(opPing, "p"), masked(opBinary, "\x00\x01")),
		fuzzStream(clientFrame(false, opText, []byte("4he"), testKey), masked(opPing, ""), clientFrame(true, opContinuation, []byte("llo"), testKey)),
		masked(opText, "4"+strings.Repeat("x", 200)),
		masked(opClose, "\x03\xe8"),
		masked(opClose, "\x03"),
		clientFrame(true, opText, []byte("4x"), nil),
		masked(opText, "4\xff"),
		masked(opText, "2probe"),
		{0x81, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff},
		fuzzStream(clientFrame(false, opText, []byte("4abc"), testKey), []byte{0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}),
	}
	for i, s := range seeds {
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
			h := newFrameHarness(t, Options{MaxBufferSize: 4096}, 4, discardLogger())
			defer h.stop()
			h.feed(data, sizes...)
			return h.outcome(t)
		}
		whole := run()
		chunked := run(sizes...)
		if whole.String() != chunked.String() {
			t.Fatalf("read whole: %v; in chunks %v: %v", whole, sizes, chunked)
		}
		for _, m := range whole.msgs {
			if !m.binary && !utf8.ValidString(m.data) {
				t.Fatalf("text message %q handed on is not UTF-8", m.data)
			}
			if len(m.data) > 4096 {
				t.Fatalf("message of %d bytes handed on, over MaxBufferSize", len(m.data))
			}
		}
		if whole.closeCode() != 0 && !whole.closed {
			t.Fatalf("close frame written, session still open: %v", whole)
		}
	})
}

// BenchmarkParseFrame measures the reader on a chat event: one masked text
// frame per read, and a read holding many frames.
func BenchmarkParseFrame(b *testing.B) {
	msg := masked(opText, `42["chat message",{"from":"alice","text":"hello, everyone"}]`)
	for _, n := range []int{1, 32} {
		b.Run(fmt.Sprintf("frames=%d", n), func(b *testing.B) {
			h := newFrameHarness(b, Options{}, 4, discardLogger())
			h.c.sess.handler = nopHandler{}
			defer h.stop()
			in := bytes.Repeat(msg, n)
			buf := make([]byte, len(in))
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, in) // unmasking is in place
				if !h.c.handleRead(buf) {
					b.Fatal("reader stopped")
				}
			}
		})
	}
}

// nopHandler is a SessionHandler that does nothing.
type nopHandler struct{}

func (nopHandler) OnMessage([]byte, bool) {}
func (nopHandler) OnQueueOverflow()       {}
func (nopHandler) OnClose(string, error)  {}

func (r recorded) String() string {
	if r.binary {
		return fmt.Sprintf("bin%q", r.data)
	}
	return fmt.Sprintf("%q", r.data)
}
