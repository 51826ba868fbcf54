package streamsadapter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// cutProxy forwards TCP connections to Redis until cut: then it closes
// them and refuses new ones, until restored.
type cutProxy struct {
	ln     net.Listener
	target string
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.down.Load() {
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.down.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *cutProxy) restore() { p.down.Store(false) }

// TestReaderResumesAfterOutage: entries added to the stream while a node
// cannot reach Redis are delivered to its clients once it can, in order:
// the node reads on from the last entry it read, not from the end.
func TestReaderResumesAfterOutage(t *testing.T) {
	rc := testRedis(t)
	name := testName()
	proxy := startCutProxy(t, testRedisAddr)
	log := &syncLog{}
	c, err := New(Options{URL: "redis://" + proxy.addr(), StreamName: name, ChannelPrefix: name,
		Log: newTextLogger(log), BlockTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close(); _ = c.Close() })
	x := wsDial(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", "")

	add := func(text string) {
		t.Helper()
		err := rc.XAdd(context.Background(), &redis.XAddArgs{Stream: name, ID: "*", Values: []string{
			"uid", "other-node", "nsp", "/", "type", "3",
			"data", `{"packet":{"type":2,"data":["m","` + text + `"]},"opts":{"rooms":[],"except":[],"flags":{}}}`,
		}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	add("before")
	if p := x.nextEvent("m"); p.text != `2["m","before"]` {
		t.Fatalf("got %q", p.text)
	}
	proxy.cut()
	eventually(t, "the node to see the outage", 5*time.Second, func() bool {
		return strings.Contains(log.String(), "redis unavailable")
	})
	for i := range 5 {
		add(fmt.Sprint("during-", i))
	}
	proxy.restore()
	for i := range 5 {
		if p, want := x.nextEvent("m"), fmt.Sprintf(`2["m","during-%d"]`, i); p.text != want {
			t.Fatalf("got %q, want %q", p.text, want)
		}
	}
	if c.Stats().Reconnects == 0 {
		t.Error("no reconnect counted")
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
