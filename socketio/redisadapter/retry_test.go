package redisadapter

import (
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ownRedis starts a redis-server of the test's own on a free loopback
// port (so that pausing it disturbs no other test) and returns its
// address; it is killed when the test ends. Without redis-server the test
// is skipped, or fails under CI=true.
func ownRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not installed (scripts/setup.sh --test installs it)")
		}
		t.Skip("redis-server not installed (scripts/setup.sh --test installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, "redis-server to listen", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return addr
}

// A Redis that stops answering publications for longer than one publish's
// deadline (CLIENT PAUSE 3000 WRITE: PUBLISH waits, subscriptions stay up)
// loses nothing: the publication in flight when its deadline passes is
// tried again, the ones queued behind it wait, and every message sent
// during the pause reaches the other node, once, in order. Before the
// retries, the publication in flight was dropped (2 messages of each 5 s
// pause in the probe).
func TestRedisAdapterPauseRetriesInOrder(t *testing.T) {
	addr := ownRedis(t)
	prefix := testPrefix(t)
	var logA testLog
	opts := Options{URL: "redis://" + addr, Prefix: prefix}
	optsA := opts
	optsA.Log = logA.logger()
	ca, err := New(optsA)
	if err != nil {
		t.Fatal(err)
	}
	opts.Log = testLogger(t)
	cb, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	a, b := startNode(t, ca, nil), startNode(t, cb, nil)
	rc := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { _ = rc.Close() })
	waitFor(t, "two nodes", 5*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(t.Context(), prefix+"-request#/#").Result()
		return n[prefix+"-request#/#"] == 2
	})
	clientB := dial(t, b, "", "")

	const before, during, after = 5, 40, 5
	k := 0
	emit := func() {
		_ = a.io.Emit("message", k)
		k++
	}
	for range before {
		emit()
	}
	// The first messages cross: the pause below starts with both nodes
	// subscribed and the publisher idle.
	for i := range before {
		checkPacket(t, clientB.nextEvent("message", 5*time.Second), packet{text: eventText("message", strconv.Itoa(i))})
	}
	pauseStart := time.Now()
	// 4.5 s: the first publication's 2 s deadline passes within the pause
	// even if the publisher starts it a couple of seconds late (a loaded
	// machine), so the retry path is always taken.
	if err := rc.Do(t.Context(), "CLIENT", "PAUSE", "4500", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	// Messages spread over the pause: the first one's publication is in
	// flight when its 2 s deadline passes, the others queue behind it.
	for range during {
		emit()
		time.Sleep(50 * time.Millisecond)
	}
	// Wait for the pause to end (the ack of a write command proves it).
	if err := rc.Set(t.Context(), prefix+"-probe", "1", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(pauseStart); d < 4000*time.Millisecond {
		t.Fatalf("the pause lasted %v: CLIENT PAUSE did not hold writes", d)
	}
	for range after {
		emit()
	}
	for i := before; i < k; i++ {
		p := clientB.nextEvent("message", 15*time.Second)
		if want := eventText("message", strconv.Itoa(i)); p.text != want {
			t.Fatalf("the other node's client got %s, want %s (every message, once, in order)", p.text, want)
		}
	}
	waitFor(t, "the counters", 5*time.Second, func() bool { return ca.Stats().Published == uint64(k) })
	if s := ca.Stats(); s.Dropped != 0 {
		t.Errorf("stats = %+v, want nothing dropped", s)
	}
	if out := logA.String(); !strings.Contains(out, "publications sent after retrying") {
		t.Errorf("the retry was not logged:\n%s", out)
	}
}

// A publication that cannot be sent within PublishRetry is dropped,
// counted and logged with how long it was tried; the node goes on
// publishing afterwards.
func TestRedisAdapterPublishRetryBound(t *testing.T) {
	addr := ownRedis(t)
	prefix := testPrefix(t)
	var log testLog
	c, err := New(Options{URL: "redis://" + addr, Prefix: prefix, Log: log.logger(), PublishRetry: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	n := startNode(t, c, nil)
	waitFor(t, "the node to be up", 5*time.Second, c.Up)
	rc := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	t.Cleanup(func() { _ = rc.Close() })
	if err := rc.Do(t.Context(), "CLIENT", "PAUSE", "20000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Do(t.Context(), "CLIENT", "UNPAUSE").Err() })
	_ = n.io.Emit("message", "lost")
	waitFor(t, "the drop", 10*time.Second, func() bool { return c.Stats().Dropped == 1 })
	out := log.String()
	if !strings.Contains(out, "redis adapter: publications dropped") || !strings.Contains(out, "retry bound passed") {
		t.Errorf("the drop was not logged with its reason:\n%s", out)
	}
	// After the pause, publications go out again.
	if err := rc.Do(t.Context(), "CLIENT", "UNPAUSE").Err(); err != nil {
		t.Fatal(err)
	}
	_ = n.io.Emit("message", "after")
	waitFor(t, "a publication after the pause", 10*time.Second, func() bool { return c.Stats().Published >= 1 })
	if s := c.Stats(); s.Dropped != 1 {
		t.Errorf("stats = %+v, want exactly the one message dropped", s)
	}
}
