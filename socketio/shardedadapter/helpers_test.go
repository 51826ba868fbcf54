package shardedadapter

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

// TestMain stops the Redis Cluster the tests share (rediscluster.Shared
// starts it at the first test that needs it).
func TestMain(m *testing.M) {
	code := m.Run()
	rediscluster.StopShared()
	os.Exit(code)
}

// testSingleRedis is the URL of the test command's Redis (scripts/setup.sh
// --test starts one); without it the test is skipped, or fails under CI=true.
func testSingleRedis(t testing.TB) string {
	t.Helper()
	const addr = "127.0.0.1:6379"
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Redis on %s: %v", addr, err)
		}
		t.Skipf("no Redis on %s: %v", addr, err)
	}
	_ = c.Close()
	return "redis://" + addr
}

// testPrefix is a channel prefix of its own for each test: tests share the
// cluster.
func testPrefix() string { return "test-sharded-" + newUID()[:8] }

// testNode is a socketio server on a sharded adapter behind an httptest
// server; setup (may be nil) adds handlers before it serves.
type testNode struct {
	io      *socketio.Server
	adapter *Adapter
	url     string
}

func startNode(t testing.TB, url, prefix string, setup func(*socketio.Server)) *testNode {
	t.Helper()
	log := testlog.New(t, slog.LevelDebug)
	ad, err := New(Options{URL: url, Prefix: prefix, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: ad, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(srv)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
		_ = ad.Close()
	})
	return &testNode{io: srv, adapter: ad, url: ts.URL}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSubscribers waits until n connections are subscribed to channel, over
// the whole deployment.
func waitSubscribers(t testing.TB, ad *Adapter, channel string, n int64) {
	t.Helper()
	waitFor(t, "subscribers of "+channel, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		got, err := redisconn.NumSub(ctx, ad.client, channel, true)
		return err == nil && got >= n
	})
}

// client is a bare Socket.IO client over a WebSocket, JSON packets only.
type client struct {
	t       testing.TB
	conn    *websocket.Conn
	wmu     sync.Mutex
	packets chan string
	sid     string
	// askReply, when set before the asks come, is what the client
	// acknowledges every "ask" event with (a JSON value); the ask is not
	// queued in packets.
	askReply atomic.Pointer[string]
}

func dial(t testing.TB, base string) *client {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, packets: make(chan string, 1024)}
	t.Cleanup(func() { _ = conn.Close() })
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("open packet: %q %v", open, err)
	}
	go c.read()
	c.send("0")
	p := c.next(5 * time.Second)
	if !strings.HasPrefix(p, "0{") {
		t.Fatalf("CONNECT answer: %q", p)
	}
	var ok struct{ SID string }
	if err := json.Unmarshal([]byte(p[1:]), &ok); err != nil {
		t.Fatal(err)
	}
	c.sid = ok.SID
	return c
}

func (c *client) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("4"+s))
}

func (c *client) read() {
	defer close(c.packets)
	for {
		_, m, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		switch {
		case string(m) == "2":
			c.wmu.Lock()
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			c.wmu.Unlock()
		case len(m) > 1 && m[0] == '4':
			p := string(m[1:])
			if reply := c.askReply.Load(); reply != nil && p[0] == '2' {
				if i := strings.Index(p, `["ask"`); i > 1 {
					c.send("3" + p[1:i] + "[" + *reply + "]")
					continue
				}
			}
			c.packets <- p
		}
	}
}

func (c *client) next(timeout time.Duration) string {
	c.t.Helper()
	select {
	case p, ok := <-c.packets:
		if !ok {
			c.t.Fatal("connection closed")
		}
		return p
	case <-time.After(timeout):
		c.t.Fatalf("no packet within %v", timeout)
	}
	return ""
}

// expect waits for the packet text want, skipping others.
func (c *client) expect(want string, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p := c.next(time.Until(deadline)); p == want {
			return
		}
	}
}

// ack sends an event with ack id 1 and returns the ack's JSON array.
func (c *client) ack(event string, id int, args ...string) string {
	c.t.Helper()
	b, _ := json.Marshal(event)
	text := "2" + itoa(id) + "[" + string(b)
	for _, a := range args {
		text += "," + a
	}
	c.send(text + "]")
	deadline := time.Now().Add(10 * time.Second)
	prefix := "3" + itoa(id) + "["
	for {
		if p := c.next(time.Until(deadline)); strings.HasPrefix(p, prefix) {
			return p[len(prefix)-1:]
		}
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
