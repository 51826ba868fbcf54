package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/gorilla/websocket"
)

// TestChatNamespaces: with -namespaces, each namespace is a conversation
// of its own: a user-message is broadcast to the clients of the namespace
// it was sent in, not to the main namespace's (whose next broadcast is the
// next thing its client gets), and a namespace not listed is refused.
func TestChatNamespaces(t *testing.T) {
	ts := startTestServer(t, func(c *chat.Config) { c.Namespaces = []string{"/n0", "/n1"} })
	a := nspChatDial(t, ts, "/n1")
	b := nspChatDial(t, ts, "/n1")
	other := nspChatDial(t, ts, "/n0")
	main := nspChatDial(t, ts, "/")

	a.write(`42/n1,["user-message","hi"]`)
	a.expect(`42/n1,["message","hi"]`)
	b.expect(`42/n1,["message","hi"]`)
	main.write(`42["user-message","marker"]`)
	main.expect(`42["message","marker"]`)
	other.write(`42/n0,["user-message","n0 only"]`)
	other.expect(`42/n0,["message","n0 only"]`)
	a.write(`42/n1,["user-message","second"]`)
	b.expect(`42/n1,["message","second"]`) // not "n0 only"

	c := nspChatOpen(t, ts)
	c.write("40/n9,")
	if got := c.next(); !strings.HasPrefix(got, "44/n9,") {
		t.Errorf("CONNECT to an unlisted namespace answered %q, want a CONNECT_ERROR", got)
	}
}

// nspChat is a raw WebSocket client of the chat, in any namespace.
type nspChat struct {
	tb   testing.TB
	conn *websocket.Conn
}

func nspChatOpen(tb testing.TB, ts *testServer) *nspChat {
	tb.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(rawChatWSURL(ts.URL), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &nspChat{tb: tb, conn: conn}
	if open := c.next(); !strings.HasPrefix(open, "0{") {
		tb.Fatalf("OPEN %q", open)
	}
	return c
}

// nspChatDial opens a session and joins nsp.
func nspChatDial(tb testing.TB, ts *testServer, nsp string) *nspChat {
	tb.Helper()
	c := nspChatOpen(tb, ts)
	prefix := "40"
	if nsp != "/" {
		prefix += nsp + ","
	}
	c.write(prefix)
	if got := c.next(); !strings.HasPrefix(got, prefix+"{") {
		tb.Fatalf("CONNECT %s answered %q", nsp, got)
	}
	return c
}

func (c *nspChat) write(packet string) {
	c.tb.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(packet)); err != nil {
		c.tb.Fatal(err)
	}
}

// next returns the next Engine.IO packet but PINGs (answered).
func (c *nspChat) next() string {
	c.tb.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, p, err := c.conn.ReadMessage()
		if err != nil {
			c.tb.Fatal(err)
		}
		if string(p) == "2" {
			c.write("3")
			continue
		}
		return string(p)
	}
}

func (c *nspChat) expect(want string) {
	c.tb.Helper()
	if got := c.next(); got != want {
		c.tb.Fatalf("got %q, want %q", got, want)
	}
}
