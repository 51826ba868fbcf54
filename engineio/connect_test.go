package engineio

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"net"
	"testing"
	"time"
)

// TestWebSocketHandshakeAnswerWithOpen: a session opened over WebSocket
// gets its 101 answer and its OPEN packet in one write (the first flush),
// so they arrive together: the first read of the client has both. With
// either I/O engine.
func TestWebSocketHandshakeAnswerWithOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode IOMode
	}{
		{"epoll", IOModeEpoll},
		{"goroutine", IOModeGoroutine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: tc.mode}, false)
			conn, err := net.DialTimeout("tcp", s.ts.Listener.Addr().String(), waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var key [16]byte
			_, _ = rand.Read(key[:])
			k := base64.StdEncoding.EncodeToString(key[:])
			req := "GET /?EIO=4&transport=websocket HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
				"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + k + "\r\n\r\n"
			_ = conn.SetDeadline(time.Now().Add(waitTimeout))
			if _, err := conn.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4096)
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got := buf[:n]
			head, rest, ok := bytes.Cut(got, []byte("\r\n\r\n"))
			if !ok || !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) || !bytes.Contains(head, []byte("Sec-WebSocket-Accept: "+acceptKey(k))) {
				t.Fatalf("first read %q: want the whole 101 answer", got)
			}
			f, err := readServerFrame(bytes.NewReader(rest))
			if err != nil {
				t.Fatalf("first read %q: no complete frame after the 101 answer: %v", got, err)
			}
			if f.op != opText || !f.fin {
				t.Fatalf("first frame: op %d fin %v, want a final text frame", f.op, f.fin)
			}
			parseOpen(t, string(f.payload))
			s.session(t)
		})
	}
}

// TestWebSocketDataThenHangUp: a client that sends a message and hangs up
// at once (the data and the end of the stream may arrive together, in one
// readiness event) has its message handled and its session closed.
func TestWebSocketDataThenHangUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   IOMode
		hangUp func(*net.TCPConn) error
	}{
		{"epoll/close", IOModeEpoll, (*net.TCPConn).Close},
		{"epoll/close write", IOModeEpoll, (*net.TCPConn).CloseWrite},
		{"goroutine/close", IOModeGoroutine, (*net.TCPConn).Close},
		{"goroutine/close write", IOModeGoroutine, (*net.TCPConn).CloseWrite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, Options{IOMode: tc.mode}, false)
			c := rawWSDial(t, s, "EIO=4&transport=websocket")
			if f, err := c.readFrame(); err != nil || f.op != opText {
				t.Fatalf("OPEN: %v %v", f, err)
			}
			rec := s.session(t)
			// One write: the message and, right behind it, the FIN.
			c.writeRaw(masked(opText, "4hello"))
			if err := tc.hangUp(c.conn.(*net.TCPConn)); err != nil {
				t.Fatal(err)
			}
			if m := rec.message(t); m.data != "hello" || m.binary {
				t.Fatalf("message %+v, want text hello", m)
			}
			if ev := rec.waitClose(t); ev.reason != "transport close" && ev.reason != "transport error" {
				t.Fatalf("closed with %q (%v), want transport close", ev.reason, ev.err)
			}
		})
	}
}

// TestOpenPacket: the OPEN packet built from the server's encoded tail is
// what encoding/json makes of it, with and without the upgrade offered;
// an id that would need escaping goes through encoding/json.
func TestOpenPacket(t *testing.T) {
	for _, opts := range []Options{
		{},
		{PingInterval: 1500 * time.Millisecond, PingTimeout: 700 * time.Millisecond, MaxBufferSize: 12345},
	} {
		srv := NewServer(opts, func(*Session) SessionHandler { return nil })
		for _, sid := range []string{newID(), "a-b_c=", `quote"and\backslash`, ""} {
			for _, upgrade := range []bool{false, true} {
				got, want := srv.openPacket(sid, upgrade), marshalOpen(sid, upgrade, srv.opts)
				if !bytes.Equal(got, want) {
					t.Errorf("openPacket(%q, %v) = %s, want %s", sid, upgrade, got, want)
				}
			}
		}
	}
}
