package streamsadapter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// syncLog is a log the test reads.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// freePort is a loopback port nothing listens on (now).
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	return port
}

// downNode is a server whose adapter's Redis is not there.
func downNode(t *testing.T, port string, mods func(*Options)) (*socketio.Server, *Cluster, *syncLog) {
	t.Helper()
	log := &syncLog{}
	opts := Options{URL: "redis://127.0.0.1:" + port, StreamName: "test-outbox-" + port,
		Log: slog.New(slog.NewTextHandler(log, nil)), StartupWait: time.Second}
	if mods != nil {
		mods(&opts)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		_ = c.Close()
	})
	return srv, c, log
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestOutboxBoundWhileRedisDown: while Redis cannot be reached, a node
// keeps MaxPending messages; past that, new ones are dropped, counted,
// and logged once.
func TestOutboxBoundWhileRedisDown(t *testing.T) {
	srv, c, log := downNode(t, freePort(t), func(o *Options) { o.MaxPending = 100 })
	for i := range 150 {
		if err := srv.Emit("m", i); err != nil {
			t.Fatal(err)
		}
	}
	st := c.Stats()
	if st.Pending != 100 || st.Dropped != 50 {
		t.Errorf("Stats = %+v, want 100 pending and 50 dropped", st)
	}
	if n := strings.Count(log.String(), "too many messages waiting for redis"); n != 1 {
		t.Errorf("%d log lines about the bound, want 1:\n%s", n, log)
	}
	eventually(t, "the outage to be logged", 5*time.Second, func() bool {
		return strings.Contains(log.String(), "redis unavailable")
	})
	if c.Up() {
		t.Error("Up() during the outage")
	}
}

// TestOutboxMemoryBound: what waits for Redis is bounded in memory too.
func TestOutboxMemoryBound(t *testing.T) {
	srv, c, _ := downNode(t, freePort(t), func(o *Options) { o.MaxPending = 1000 })
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	big := strings.Repeat("x", 2048)
	const n = 30000 // 60 MB of arguments if they were all kept
	for i := range n {
		if err := srv.Emit("m", big+fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	after := heap()
	if st := c.Stats(); st.Pending != 1000 || st.Dropped != n-1000 {
		t.Errorf("Stats = %+v", st)
	}
	grew := int64(after) - int64(before)
	t.Logf("heap: %+d kB for %d broadcasts of 2 kB, %d kept", grew>>10, n, c.Stats().Pending)
	if grew > 12<<20 {
		t.Errorf("the heap grew by %d MB for 1000 kept messages of 2 kB", grew>>20)
	}
}

// TestOutboxPublishesInOrderWhenBack: broadcasts made before Redis is up
// are added to the stream, all of them, in order, once it is.
func TestOutboxPublishesInOrderWhenBack(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		needs(t, "redis-server is not installed")
	}
	port := freePort(t)
	srv, c, log := downNode(t, port, nil)
	const n = 500
	for i := range n {
		if err := srv.Emit("m", i); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, "the outbox to empty", 15*time.Second, func() bool { return c.Stats().Pending == 0 })
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port, Protocol: 2})
	defer rc.Close()
	entries, err := rc.XRange(context.Background(), c.opts.StreamName, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d entries, want %d", len(entries), n)
	}
	for i, e := range entries {
		m, err := decodeEntry(e.Values)
		if err != nil || m.packet == nil || string(m.packet.Args[0].JSON) != fmt.Sprint(i) {
			t.Fatalf("entry %d: %+v %v", i, m, err)
		}
	}
	eventually(t, "the end of the outage to be logged", 5*time.Second, func() bool {
		return strings.Contains(log.String(), "redis available again") && c.Up()
	})
}
