package streamsadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

const testRedisAddr = "127.0.0.1:6379"

// testRedis is a client of the shared Redis, or skips (fails under CI=true).
func testRedis(t *testing.T) *redis.Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", testRedisAddr, time.Second)
	if err != nil {
		needs(t, "no Redis on %s (scripts/setup.sh --test starts one): %v", testRedisAddr, err)
	}
	_ = c.Close()
	rc := redis.NewClient(&redis.Options{Addr: testRedisAddr, Protocol: 2})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func testName() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "test-streams-" + hex.EncodeToString(b)
}

// recoveryNode is a server with recovery on a stream of the shared Redis.
func recoveryNode(t *testing.T, name string, setup func(*socketio.Server)) (*socketio.Server, string) {
	t.Helper()
	c, err := New(Options{URL: "redis://" + testRedisAddr, StreamName: name, ChannelPrefix: name,
		SessionKeyPrefix: name + ":session:"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c,
		Recovery: &socketio.RecoveryOptions{MaxDisconnectionDuration: 2 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ts.Close()
		srv.Close()
		_ = c.Close()
	})
	return srv, "ws" + strings.TrimPrefix(ts.URL, "http") + "/socket.io/?EIO=4&transport=websocket"
}

// rawClient is a bare Socket.IO client of "/" over a WebSocket.
type rawClient struct {
	t      *testing.T
	conn   *websocket.Conn
	events chan []json.RawMessage
	sid    string
	pid    string
}

func rawDial(t *testing.T, url, auth string) *rawClient {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &rawClient{t: t, conn: conn, events: make(chan []json.RawMessage, 100)}
	if _, open, err := conn.ReadMessage(); err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("open: %q %v", open, err)
	}
	_ = conn.WriteMessage(websocket.TextMessage, []byte("40"+auth))
	connected := make(chan string, 1)
	go func() {
		defer close(c.events)
		for {
			_, m, err := conn.ReadMessage()
			if err != nil {
				return
			}
			s := string(m)
			switch {
			case s == "2":
				_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
			case strings.HasPrefix(s, "40{"):
				connected <- s[2:]
			case strings.HasPrefix(s, "42["):
				var args []json.RawMessage
				if json.Unmarshal([]byte(s[2:]), &args) == nil {
					c.events <- args
				}
			}
		}
	}()
	select {
	case s := <-connected:
		var ans struct{ SID, PID string }
		_ = json.Unmarshal([]byte(s), &ans)
		c.sid, c.pid = ans.SID, ans.PID
	case <-time.After(5 * time.Second):
		t.Fatal("no CONNECT answer")
	}
	return c
}

func (c *rawClient) emit(text string) {
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("42"+text))
}

// next returns the next event's text argument and its offset.
func (c *rawClient) next() (string, string) {
	c.t.Helper()
	select {
	case args, ok := <-c.events:
		if !ok || len(args) < 3 {
			c.t.Fatalf("connection closed or event without offset: %q", args)
		}
		var text, offset string
		_ = json.Unmarshal(args[1], &text)
		_ = json.Unmarshal(args[len(args)-1], &offset)
		return text, offset
	case <-time.After(5 * time.Second):
		c.t.Fatal("no event within 5s")
	}
	return "", ""
}

// TestSessionSavedOnChangeAndRestoredElsewhere: a session is in Redis as
// soon as its socket connects and follows its rooms and data; another node
// restores it with the broadcasts its rooms select, in order, and its
// rooms.
func TestSessionSavedOnChangeAndRestoredElsewhere(t *testing.T) {
	rc := testRedis(t)
	name := testName()
	a, urlA := recoveryNode(t, name, func(srv *socketio.Server) {
		srv.OnConnection(func(s *socketio.Socket) {
			s.On("join", func(e *socketio.Event) { s.Join("r") })
			s.On("data", func(e *socketio.Event) { s.SetData(map[string]any{"user": "ann"}) })
		})
	})
	b, urlB := recoveryNode(t, name, nil)
	x := rawDial(t, urlA, "")
	key := name + ":session:" + x.pid
	session := func() *socketio.SessionState {
		raw, err := rc.Get(context.Background(), key).Result()
		if err != nil {
			return nil
		}
		st, err := decodeSession(raw)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	eventually(t, "the session saved at connect", 5*time.Second, func() bool {
		st := session()
		return st != nil && st.SID == x.sid && slices.Equal(st.Rooms, []string{x.sid})
	})
	if ttl := rc.PTTL(context.Background(), key).Val(); ttl <= time.Minute || ttl > 2*time.Minute {
		t.Errorf("the session's TTL is %v, want the window (2m)", ttl)
	}
	x.emit(`["join"]`)
	eventually(t, "the session to list room r", 5*time.Second, func() bool {
		st := session()
		return st != nil && slices.Equal(st.Rooms, []string{x.sid, "r"})
	})
	x.emit(`["data"]`)
	eventually(t, "the session to have the data", 5*time.Second, func() bool {
		st := session()
		m, _ := st.Data.(map[string]any)
		return m != nil && m["user"] == "ann"
	})

	// x gets one broadcast, then its connection is cut.
	if err := b.To("r").Emit("m", "hello"); err != nil {
		t.Fatal(err)
	}
	text, offset := x.next()
	if text != "hello" {
		t.Fatalf("got %q", text)
	}
	// A Local broadcast is not in the stream: it comes without an offset
	// (as from Node), so the client's offset stays the one of "hello".
	if err := a.Local().Emit("m", "local"); err != nil {
		t.Fatal(err)
	}
	select {
	case args := <-x.events:
		if len(args) != 2 || string(args[1]) != `"local"` {
			t.Fatalf("local broadcast: %q, want no offset", args)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no local broadcast")
	}
	_ = x.conn.Close()
	for _, e := range []struct{ room, text string }{{"r", "in-room"}, {"other", "not-for-x"}, {"", "all"}} {
		op := b.Sockets().Except()
		if e.room != "" {
			op = b.To(e.room)
		}
		if err := op.Emit("m", e.text); err != nil {
			t.Fatal(err)
		}
	}
	// Every node has them in the stream before x comes back to B.
	eventually(t, "three more entries", 5*time.Second, func() bool {
		return rc.XLen(context.Background(), name).Val() >= 4
	})

	y := rawDial(t, urlB, `{"pid":"`+x.pid+`","offset":"`+offset+`"}`)
	if y.sid != x.sid || y.pid != x.pid {
		t.Fatalf("on B: sid %s pid %s, want the session %s %s recovered", y.sid, y.pid, x.sid, x.pid)
	}
	var got []string
	for range 2 {
		text, _ := y.next()
		got = append(got, text)
	}
	if want := []string{"in-room", "all"}; !slices.Equal(got, want) {
		t.Errorf("missed: %q, want %q", got, want)
	}
	// Its room came with it.
	if err := b.To("r").Emit("m", "live"); err != nil {
		t.Fatal(err)
	}
	if text, _ := y.next(); text != "live" {
		t.Errorf("live: %q", text)
	}
}
