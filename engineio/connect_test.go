package engineio

import (
	"bytes"
	"net"
	"testing"
	"time"
)

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
