package redisadapter

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
)

const testRedisAddr = "127.0.0.1:6379"

// testRedis returns a client of the shared Redis of the test command
// (scripts/setup.sh --test starts one). Without it the test is skipped,
// or fails under CI=true.
func testRedis(t testing.TB) *redis.Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", testRedisAddr, time.Second)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Redis on %s (scripts/setup.sh --test starts one): %v", testRedisAddr, err)
		}
		t.Skipf("no Redis on %s (scripts/setup.sh --test starts one): %v", testRedisAddr, err)
	}
	_ = c.Close()
	rc := redis.NewClient(&redis.Options{Addr: testRedisAddr, Protocol: 2})
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// testPrefix is a key prefix of its own for each test: tests share Redis.
func testPrefix(t testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "test-adapter-" + hex.EncodeToString(b)
}

// testLogger sends log lines to t.Log until the test ends.
func testLogger(t testing.TB) *slog.Logger { return testlog.New(t, slog.LevelDebug) }

// testLog is a logger writing to a buffer the test can read.
type testLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *testLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *testLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// newTestCluster is a Cluster on the test Redis, closed at the end; mods
// change its options.
func newTestCluster(t testing.TB, prefix string, mods ...func(*Options)) *Cluster {
	t.Helper()
	opts := Options{URL: "redis://" + testRedisAddr, Prefix: prefix, Log: testLogger(t)}
	for _, m := range mods {
		m(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testNode is a socketio server with a cluster adapter behind an
// httptest server.
type testNode struct {
	io      *socketio.Server
	cluster *Cluster
	url     string
}

// startNode starts a server on adapter; setup, when not nil, runs before
// it serves (to add handlers).
func startNode(t testing.TB, adapter socketio.Adapter, setup func(*socketio.Server)) *testNode {
	t.Helper()
	srv, err := socketio.NewServer(socketio.Options{Adapter: adapter, Logger: testLogger(t)})
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
	})
	n := &testNode{io: srv, url: ts.URL}
	n.cluster, _ = adapter.(*Cluster)
	return n
}

// packet is a Socket.IO packet a client received: its text (without the
// Engine.IO type) and its attachments.
type packet struct {
	text string
	bins [][]byte
}

// wsClient is a bare Socket.IO client over a WebSocket: it shows the bytes
// the server sends, and sends exactly the bytes a test gives it.
type wsClient struct {
	t       testing.TB
	conn    *websocket.Conn
	wmu     sync.Mutex
	packets chan packet
	sid     string
}

// dial connects a client to the namespace "/" of a node, with auth and
// query (may be empty), and waits for the CONNECT answer.
func dial(t testing.TB, n *testNode, query, auth string) *wsClient {
	t.Helper()
	u := "ws" + strings.TrimPrefix(n.url, "http") + "/socket.io/?EIO=4&transport=websocket"
	if query != "" {
		u += "&" + query
	}
	h := http.Header{"X-Test": {"yes"}}
	conn, _, err := websocket.DefaultDialer.Dial(u, h)
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, conn: conn, packets: make(chan packet, 4096)}
	t.Cleanup(func() { _ = conn.Close() })
	_, open, err := conn.ReadMessage()
	if err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("open packet: %q %v", open, err)
	}
	go c.read()
	c.sendText("0" + auth)
	p := c.next(5 * time.Second)
	if !strings.HasPrefix(p.text, "0{") {
		t.Fatalf("CONNECT answer: %q", p.text)
	}
	var ok struct{ SID string }
	if err := json.Unmarshal([]byte(p.text[1:]), &ok); err != nil {
		t.Fatal(err)
	}
	c.sid = ok.SID
	return c
}

func (c *wsClient) sendText(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("4"+s))
}

func (c *wsClient) sendBinary(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.BinaryMessage, b)
}

// read answers pings and assembles packets with their attachments.
func (c *wsClient) read() {
	defer close(c.packets)
	var pending *packet
	want := 0
	for {
		typ, m, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			if pending != nil {
				pending.bins = append(pending.bins, m)
				if len(pending.bins) == want {
					c.packets <- *pending
					pending = nil
				}
			}
			continue
		}
		switch {
		case string(m) == "2":
			c.wmu.Lock()
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			c.wmu.Unlock()
		case len(m) > 1 && m[0] == '4':
			p := packet{text: string(m[1:])}
			if p.text[0] == '5' || p.text[0] == '6' {
				n, _ := strconv.Atoi(p.text[1:strings.IndexByte(p.text, '-')])
				pending, want = &p, n
				continue
			}
			c.packets <- p
		}
	}
}

// next returns the next packet, failing the test after timeout.
func (c *wsClient) next(timeout time.Duration) packet {
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
	return packet{}
}

// nextEvent returns the next EVENT or BINARY_EVENT packet named event,
// skipping others.
func (c *wsClient) nextEvent(event string, timeout time.Duration) packet {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := c.next(time.Until(deadline))
		if i := strings.IndexByte(p.text, '['); i >= 0 && (p.text[0] == '2' || p.text[0] == '5') &&
			strings.HasPrefix(p.text[i:], "["+strconv.Quote(event)) {
			return p
		}
	}
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitSubscribed waits until a node listens on the pattern: a probe
// published on it reaches somebody.
func waitSubscribed(t testing.TB, rc *redis.Client, broadcastChannel string) {
	t.Helper()
	waitFor(t, "a subscription to "+broadcastChannel, 5*time.Second, func() bool {
		n, err := rc.Publish(t.Context(), broadcastChannel+"probe#", []byte{0xc0}).Result()
		return err == nil && n > 0
	})
}

// eventText is the packet text of event with JSON arguments.
func eventText(event string, args ...string) string {
	return fmt.Sprintf("2[%q%s]", event, prefixed(args))
}

func prefixed(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(',')
		b.WriteString(a)
	}
	return b.String()
}

// localServer is a one-node server whose main namespace's LocalNamespace
// (what an adapter is handed) the wire tests decode sockets against.
func localServer(t testing.TB) (*socketio.Server, socketio.LocalNamespace) {
	t.Helper()
	ad := &capturingAdapter{}
	srv, err := socketio.NewServer(socketio.Options{Adapter: ad})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, ad.local
}

// capturingAdapter is the single-node adapter, keeping the LocalNamespace
// of the last namespace it was given.
type capturingAdapter struct {
	socketio.MemoryAdapter
	local socketio.LocalNamespace
}

func (c *capturingAdapter) Namespace(l socketio.LocalNamespace) (socketio.NamespaceAdapter, error) {
	c.local = l
	return c.MemoryAdapter.Namespace(l)
}
