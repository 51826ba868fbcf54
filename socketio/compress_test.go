package socketio

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/engineio"
)

// deflateFrame is one server frame as a client reads it: whether it was
// compressed (RSV1), and its payload, inflated.
type deflateFrame struct {
	compressed bool
	text       string
}

// dialDeflate opens a WebSocket session that offers permessage-deflate, as
// browsers do, over a bare TCP connection, so that the test sees which
// frames the server compressed. It joins the main namespace.
func dialDeflate(t *testing.T, s *testIO) (read func() deflateFrame, write func(string)) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.ts.Listener.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !strings.HasPrefix(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("handshake: %s, extensions %q", resp.Status, resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	read = func() deflateFrame {
		t.Helper()
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatal(err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			_, _ = io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			_, _ = io.ReadFull(br, b[:])
			n = int(binary.BigEndian.Uint64(b[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		f := deflateFrame{compressed: h[0]&0x40 != 0, text: string(p)}
		if f.compressed {
			r := flate.NewReader(io.MultiReader(bytes.NewReader(p), strings.NewReader("\x00\x00\xff\xff\x01\x00\x00\xff\xff")))
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("inflate: %v", err)
			}
			f.text = string(b)
		}
		return f
	}
	write = func(text string) {
		t.Helper()
		// A masked text frame, with a zero key (masking is a no-op).
		b := []byte{0x81}
		if len(text) < 126 {
			b = append(b, 0x80|byte(len(text)))
		} else {
			b = append(b, 0x80|126, byte(len(text)>>8), byte(len(text)))
		}
		b = append(b, 0, 0, 0, 0)
		b = append(b, text...)
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if f := read(); !strings.HasPrefix(f.text, "0{") {
		t.Fatalf("OPEN: %+v", f)
	}
	write("40")
	if f := read(); !strings.HasPrefix(f.text, "40{") {
		t.Fatalf("CONNECT: %+v", f)
	}
	return read, write
}

// TestCompressFalse checks Compress(false), Node's compress(false), on a
// client that negotiated compression: the events it marks go uncompressed,
// the others compressed, from a socket's emit, a broadcast, the server's
// and a namespace's, with and without connection state recovery (whose
// emits take the broadcast path).
func TestCompressFalse(t *testing.T) {
	for _, recovery := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "recovery"}[recovery], func(t *testing.T) {
			opts := Options{Engine: engineio.Options{PerMessageDeflate: true, PerMessageDeflateThreshold: 100}}
			if recovery {
				opts.Recovery = &RecoveryOptions{MaxDisconnectionDuration: time.Minute, SkipMiddlewares: true}
			}
			big := strings.Repeat("compressible ", 20)
			s := startIO(t, opts, func(io *Server) {
				io.OnConnection(func(so *Socket) {
					_ = so.Emit("a", big)
					_ = so.Compress(false).Emit("b", big)
					_ = so.Compress(false).Timeout(time.Minute).Compress(true).Emit("c", big)
					_ = io.Compress(false).Emit("d", big)
					_ = io.Emit("e", big)
					_ = io.Of("/").Compress(false).To(so.ID()).Emit("f", big)
					_ = so.Compress(false).Emit("g", "small")
					_ = so.Emit("h", "small")
				})
			})
			read, _ := dialDeflate(t, s)
			want := map[string]bool{"a": true, "b": false, "c": true, "d": false, "e": true, "f": false, "g": false, "h": false}
			for _, ev := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
				f := read()
				if !strings.HasPrefix(f.text, `42["`+ev+`"`) {
					t.Fatalf("got %q, want event %q", f.text, ev)
				}
				if f.compressed != want[ev] {
					t.Errorf("event %q: compressed %v, want %v", ev, f.compressed, want[ev])
				}
			}
		})
	}
}
