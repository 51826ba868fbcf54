package engineio

// Protocol behaviours as Node has them (engine.io 6.6, ws 8, socket.io
// 4.8.4), each checked side by side with a Node server: what Node does is
// written in each test's comment.

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestCloseFrameStatusCodes: a close frame whose status code RFC 6455 §7.4
// does not allow on the wire is answered with 1002 (protocol error), as
// ws does (isValidStatusCode: 1000–1014 but 1004, 1005 and 1006, and
// 3000–4999); a valid code is echoed. Node, probed with a raw client: 999,
// 1004, 1005, 1006, 1015, 1016, 2999, 5000 and 65535 get 1002; 1000, 1001,
// 1003, 1007, 1011–1014, 3000 and 4999 are echoed.
func TestCloseFrameStatusCodes(t *testing.T) {
	tests := []struct {
		code      uint16
		wantClose int
		wantEnd   string
	}{
		{999, closeProtocolError, "transport error"},
		{0, closeProtocolError, "transport error"},
		{1004, closeProtocolError, "transport error"},
		{1005, closeProtocolError, "transport error"},
		{1006, closeProtocolError, "transport error"},
		{1015, closeProtocolError, "transport error"},
		{1016, closeProtocolError, "transport error"},
		{2999, closeProtocolError, "transport error"},
		{5000, closeProtocolError, "transport error"},
		{65535, closeProtocolError, "transport error"},
		{1000, 1000, "transport close"},
		{1001, 1001, "transport close"},
		{1003, 1003, "transport close"},
		{1007, 1007, "transport close"},
		{1011, 1011, "transport close"},
		{1012, 1012, "transport close"},
		{1014, 1014, "transport close"},
		{3000, 3000, "transport close"},
		{4999, 4999, "transport close"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			h := newFrameHarness(t, Options{}, 4, discardLogger())
			defer h.stop()
			var p [2]byte
			binary.BigEndian.PutUint16(p[:], tt.code)
			h.feed(masked(opClose, string(p[:])+"bye"))
			o := h.outcome(t)
			if got := o.closeCode(); got != tt.wantClose {
				t.Errorf("close %d answered with %d, want %d (%v)", tt.code, got, tt.wantClose, o)
			}
			if o.reason != tt.wantEnd {
				t.Errorf("session end = %q, want %q", o.reason, tt.wantEnd)
			}
		})
	}
}

// pendingGet starts a GET of c and waits until the server holds it.
func pendingGet(t *testing.T, c *pollClient, rec *recorder) <-chan response {
	t.Helper()
	ch := make(chan response, 1)
	go func() {
		r := do(t, c.hc, http.MethodGet, c.url(), "", nil)
		ch <- r
	}()
	waitFor(t, "the GET pending", rec.sess.Waiting)
	return ch
}

func recvResponse(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatal("the pending GET was not answered")
		return response{}
	}
}

// TestClientCloseReleasesGetWithNoop: a client that sends CLOSE in a POST
// while its GET is pending ends the session; Node (engine.io 6.6.12,
// Polling.onClose) answers the POST "ok", the pending GET with a NOOP ("6",
// not CLOSE: the client asked), and the next GET with 400
// {"code":1,"message":"Session ID unknown"}.
func TestClientCloseReleasesGetWithNoop(t *testing.T) {
	for _, eio := range []int{4, 3} {
		t.Run(fmt.Sprintf("EIO=%d", eio), func(t *testing.T) {
			s := startServer(t, Options{AllowEIO3: true}, false)
			c, rec := pollOpen(t, s, eio)
			get := pendingGet(t, c, rec)
			body := "1"
			if eio == 3 {
				body = "1:1"
			}
			if r := c.post(body); r.status != 200 || r.body != "ok" {
				t.Fatalf("POST CLOSE = %d %q, want 200 ok", r.status, r.body)
			}
			want := "6"
			if eio == 3 {
				want = "1:6"
			}
			if r := recvResponse(t, get); r.status != 200 || r.body != want {
				t.Errorf("pending GET = %d %q, want 200 %q (NOOP)", r.status, r.body, want)
			}
			if ev := rec.waitClose(t); ev.reason != "transport close" {
				t.Errorf("closed with %q, want transport close", ev.reason)
			}
			r, _ := c.get()
			if r.status != 400 || parseError(t, r).Code != codeUnknownSID {
				t.Errorf("next GET = %d %q, want 400 code 1", r.status, r.body)
			}
		})
	}
}

// TestMalformedPostBody: a polling body that is not an Engine.IO payload
// closes the session ("parse error") after the packets before the bad one,
// and the POST is answered "ok", as Node does (engine.io-parser decodes up
// to an error packet, Socket.onPacket closes on it, and the POST gets its
// "ok" after onData); then the pending GET gets CLOSE and the next GET 400
// {"code":1,"message":"Session ID unknown"}. Probed on Node with "abc" and
// "4hi\x1eabc", with and without a pending GET.
func TestMalformedPostBody(t *testing.T) {
	tests := []struct {
		name, body string
		pending    bool
		wantMsgs   []string
	}{
		{"unknown packet type", "abc", false, nil},
		{"unknown packet type, GET pending", "abc", true, nil},
		{"empty body", "", false, nil},
		{"message then garbage, GET pending", "4hi\x1eabc\x1e4lost", true, []string{"hi"}},
		{"message then empty packet", "4hi\x1e", false, []string{"hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Options{}, false)
			c, rec := pollOpen(t, s, 4)
			var get <-chan response
			if tt.pending {
				get = pendingGet(t, c, rec)
			}
			if r := c.post(tt.body); r.status != 200 || r.body != "ok" {
				t.Errorf("POST %q = %d %q, want 200 ok", tt.body, r.status, r.body)
			}
			if ev := rec.waitClose(t); ev.reason != "parse error" {
				t.Errorf("closed with %q, want parse error", ev.reason)
			}
			var got []string
			for len(rec.msgs) > 0 {
				got = append(got, (<-rec.msgs).data)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantMsgs) {
				t.Errorf("messages handed on: %q, want %q", got, tt.wantMsgs)
			}
			if tt.pending {
				if r := recvResponse(t, get); r.status != 200 || r.body != "1" {
					t.Errorf("pending GET = %d %q, want 200 \"1\" (CLOSE)", r.status, r.body)
				}
			}
			r, _ := c.get()
			if r.status != 400 || parseError(t, r).Code != codeUnknownSID {
				t.Errorf("next GET = %d %q, want 400 code 1", r.status, r.body)
			}
		})
	}
}

// TestSecondWebSocketClosed: a WebSocket opened with the sid of a session
// that has one already (upgraded, opened over WebSocket, or probing one)
// completes its handshake and is closed, while the session's own transport
// goes on. Node (engine.io 6.6.12, onWebSocket: "transport had already been
// upgraded", websocket.close()) answers 101, then a close frame with no
// status code (88 00), then waits for the client's close; a probe in
// progress is treated the same ("transport has already been trying to
// upgrade"). We answered 400 over HTTP, which clients report as an error.
func TestSecondWebSocketClosed(t *testing.T) {
	for _, m := range ioModes {
		for _, state := range []string{"upgraded", "opened over websocket", "probing"} {
			t.Run(m.name+"/"+state, func(t *testing.T) {
				s := startServer(t, Options{IOMode: m.mode}, true)
				var (
					first *wsClient
					sid   string
					rec   *recorder
				)
				if state == "opened over websocket" {
					var hs handshakeJSON
					first, hs, rec = wsOpen(t, s, 4)
					sid = hs.SID
				} else {
					var c *pollClient
					c, rec = pollOpen(t, s, 4)
					sid = c.sid
					var err error
					first, _, err = wsDial(t, s.wsURL("EIO=4&transport=websocket&sid="+sid))
					if err != nil {
						t.Fatal(err)
					}
					first.write("2probe")
					if got := first.readText(); got != "3probe" {
						t.Fatalf("probe answered %q", got)
					}
					if state == "upgraded" {
						first.write("5")
						recvSignal(t, rec.upgraded, "OnUpgrade")
					}
				}

				second := rawWSDial(t, s, "EIO=4&transport=websocket&sid="+sid) // fails on anything but 101
				f, err := second.readFrame()
				if err != nil {
					t.Fatalf("second WebSocket: %v, want a close frame", err)
				}
				if f.op != opClose || len(f.payload) != 0 {
					t.Fatalf("second WebSocket got op %d %q, want an empty close frame (as ws's close())", f.op, f.payload)
				}
				// Our input is dropped; the client's close ends it.
				second.writeRaw(masked(opText, "4ignored"))
				second.writeRaw(masked(opClose, ""))
				if f, err := second.readFrame(); err == nil {
					t.Fatalf("second WebSocket: frame op %d %q after the close, want the end of the connection", f.op, f.payload)
				}

				if state == "probing" {
					first.write("5")
					recvSignal(t, rec.upgraded, "OnUpgrade")
				}
				first.write("4still")
				if got := first.readText(); got != "4still" {
					t.Errorf("echo on the first WebSocket = %q, want 4still", got)
				}
				if m := rec.message(t); m.data != "still" {
					t.Errorf("session received %q, want only \"still\"", m.data)
				}
				if rec.isClosed() {
					t.Errorf("session closed: %v", rec.waitClose(t))
				}
			})
		}
	}
}

func recvSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("%s not within %v", what, waitTimeout)
	}
}
