package redisadapter

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// joinRoom1 makes every socket of the main namespace join "room1".
func joinRoom1(srv *socketio.Server) {
	srv.OnConnection(func(s *socketio.Socket) { s.Join("room1") })
}

// A Node.js node's broadcasts, published as Node publishes them (the bytes
// of testdata/node-publish.json), reach our clients as Node's clients get
// them: io.emit on "prefix#/#" too, which the library's v3 adapter dropped.
func TestRedisAdapterReceivesNodeBroadcasts(t *testing.T) {
	rc := testRedis(t)
	prefix := testPrefix(t)
	n := startNode(t, newTestCluster(t, prefix), joinRoom1)
	c := dial(t, n, "", "")
	waitSubscribed(t, rc, prefix+"#/#")
	waitFor(t, "the socket in room1", 5*time.Second, func() bool { return slices.Contains(n.io.Sockets().Rooms(), "room1") })

	f := loadNodePublications(t)
	for _, name := range []string{"emit-all", "emit-room", "emit-nsp", "emit-rooms-except", "emit-values", "emit-binary-nested"} {
		channel := prefix + strings.TrimPrefix(f.get(t, name).channel, "fixture")
		if err := rc.Publish(t.Context(), channel, f.get(t, name).msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []packet{
		{text: `2["message","hello"]`},
		{text: `2["message","to room1"]`},
		// emit-nsp is /admin's; emit-rooms-except is for rooms a and b. (A
		// volatile broadcast, emit-flags, may be dropped by design.)
		{text: `51-["message",{"int":42,"neg":-7,"big":1099511627776,"float":1.5,"str":"é✓","t":true,"f":false,"nil":null,` +
			`"list":[1,"two",null],"bin":{"_placeholder":true,"num":0}}]`, bins: [][]byte{{0, 1, 2, 255}}},
		{text: `53-["message",{"a":[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]},{"_placeholder":true,"num":2},"x"]`,
			bins: [][]byte{{1, 2}, {3}, {4}}},
	}
	for _, w := range want {
		checkPacket(t, c.next(5*time.Second), w)
	}
	if s := n.cluster.Stats(); s.Received != 5 {
		t.Errorf("stats = %+v, want 5 received (emit-rooms-except has no recipient here)", s)
	}
}

func checkPacket(t *testing.T, got, want packet) {
	t.Helper()
	if got.text != want.text {
		t.Errorf("packet\n got %.400s\nwant %.400s", got.text, want.text)
		return
	}
	if len(got.bins) != len(want.bins) {
		t.Errorf("%d attachments, want %d", len(got.bins), len(want.bins))
		return
	}
	for i := range got.bins {
		if string(got.bins[i]) != string(want.bins[i]) {
			t.Errorf("attachment %d = %x, want %x", i, got.bins[i], want.bins[i])
		}
	}
}

// A node's own broadcasts are delivered locally exactly once (the echo of
// its publication is ignored), and its messages reach another node in
// order.
func TestRedisAdapterNoEchoAndOrder(t *testing.T) {
	rc := testRedis(t)
	prefix := testPrefix(t)
	a, b := startNode(t, newTestCluster(t, prefix), nil), startNode(t, newTestCluster(t, prefix), nil)
	ca, cb := dial(t, a, "", ""), dial(t, b, "", "")
	waitFor(t, "two nodes", 5*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(t.Context(), prefix+"-request#/#").Result()
		return n[prefix+"-request#/#"] == 2
	})
	const n = 200
	for i := range n {
		if err := a.io.Emit("message", fmt.Sprintf("m%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = a.io.Emit("message", "end")
	for _, c := range []*wsClient{ca, cb} {
		for i := range n {
			checkPacket(t, c.nextEvent("message", 5*time.Second), packet{text: eventText("message", strconv.Quote(fmt.Sprintf("m%03d", i)))})
		}
		checkPacket(t, c.nextEvent("message", 5*time.Second), packet{text: eventText("message", `"end"`)})
	}
	// b's fence comes back to a after any echo of a's messages would have.
	_ = b.io.Emit("message", "fence")
	for _, c := range []*wsClient{ca, cb} {
		checkPacket(t, c.nextEvent("message", 5*time.Second), packet{text: eventText("message", `"fence"`)})
	}
	if s := a.cluster.Stats(); s.Published != n+1 || s.Dropped != 0 || s.Received != 1 {
		t.Errorf("a stats = %+v, want %d published, 0 dropped, 1 received", s, n+1)
	}
	if s := b.cluster.Stats(); s.Received != n+1 {
		t.Errorf("b stats = %+v, want %d received", s, n+1)
	}
	if !a.cluster.Up() || !b.cluster.Up() {
		t.Error("Up() = false with Redis up")
	}
}

// With Redis unreachable, a node starts at once, broadcasts still reach
// the local clients without waiting, their remote copies are dropped and
// counted, and the outage is logged once.
func TestRedisAdapterDownKeepsLocalDelivery(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now: connections are refused

	var log testLog
	c, err := New(Options{URL: "redis://" + addr, Prefix: testPrefix(t), Log: log.logger(), StartupWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	start := time.Now()
	n := startNode(t, c, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("start-up took %v with Redis down", d)
	}
	// A namespace made once the outage is known does not wait.
	start = time.Now()
	n.io.Of("/other")
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("a new namespace took %v with Redis known to be down", d)
	}
	cl := dial(t, n, "", "")

	const count = 100
	var slowest time.Duration
	for i := range count {
		start := time.Now()
		_ = n.io.Emit("message", fmt.Sprintf("m%d", i))
		slowest = max(slowest, time.Since(start))
	}
	if slowest > 100*time.Millisecond {
		t.Errorf("a broadcast took %v with Redis down: publishing blocks", slowest)
	}
	for i := range count {
		checkPacket(t, cl.nextEvent("message", 5*time.Second), packet{text: eventText("message", strconv.Quote(fmt.Sprintf("m%d", i)))})
	}
	waitFor(t, "the drops", 5*time.Second, func() bool { return c.Stats().Dropped >= count })
	if s := c.Stats(); s.Dropped != count || s.Published != 0 {
		t.Errorf("stats = %+v, want %d dropped, 0 published", s, count)
	}
	if c.Up() {
		t.Error("Up() = true with Redis down")
	}
	if got := strings.Count(log.String(), "redis unavailable"); got != 1 {
		t.Errorf("logged the outage %d times, want once:\n%s", got, log.String())
	}
}

func TestRedisAdapterCloseTwice(t *testing.T) {
	c, err := New(Options{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.enqueue(publication{channel: "x", payload: []byte("y")}) // after Close: dropped, never blocks
	if got := c.Stats().Dropped; got != 1 {
		t.Errorf("dropped = %d, want 1", got)
	}
}

func TestRedisNewRejectsBadURL(t *testing.T) {
	if _, err := New(Options{URL: "redis://127.0.0.1:6379/notadb"}); err == nil {
		t.Error("accepted a bad database number")
	}
}

// The publishing queue never blocks: when it is full, broadcasts are
// dropped and counted.
func TestRedisAdapterQueueFullDrops(t *testing.T) {
	testRedis(t)
	c, err := New(Options{URL: "redis://" + testRedisAddr, Prefix: testPrefix(t), Log: testLogger(t), PublishQueue: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	n := startNode(t, c, nil)
	const count = 5000
	start := time.Now()
	for i := range count {
		_ = n.io.Emit("message", i)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d broadcasts took %v", count, d)
	}
	waitFor(t, "the queue to drain", 5*time.Second, func() bool {
		s := c.Stats()
		return s.Published+s.Dropped == count
	})
	if s := c.Stats(); s.Dropped == 0 || s.Published == 0 {
		t.Errorf("stats = %+v: want some published and some dropped", s)
	}
}

// A burst from one node reaches another in full. With RESP3, go-redis's
// push handling lost 3 to 6 of 20000 messages of 1 kB (12000 here, to keep
// it short under -race; see New).
func TestRedisAdapterBurstArrivesWhole(t *testing.T) {
	rc := testRedis(t)
	prefix := testPrefix(t)
	a, b := startNode(t, newTestCluster(t, prefix), nil), startNode(t, newTestCluster(t, prefix), nil)
	waitSubscribed(t, rc, prefix+"#/#")
	waitFor(t, "two nodes", 5*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(t.Context(), prefix+"-request#/#").Result()
		return n[prefix+"-request#/#"] == 2
	})
	// Bursts that fit the publishing queue (4096).
	const burst, n = 4000, 12000
	payload := strings.Repeat("x", 1000)
	for sent := 0; sent < n; {
		for range burst {
			_ = a.io.Emit("message", payload, sent)
			sent++
		}
		waitFor(t, "the burst to leave", 20*time.Second, func() bool {
			s := a.cluster.Stats()
			return s.Published+s.Dropped >= uint64(sent)
		})
	}
	waitFor(t, "the burst to arrive", 20*time.Second, func() bool { return b.cluster.Stats().Received >= n })
	if sa, sb := a.cluster.Stats(), b.cluster.Stats(); sa.Published != n || sb.Received != n {
		t.Errorf("sender %+v, receiver %+v: want %d published and received", sa, sb, n)
	}
}

// When Redis restarts, each node logs the outage once and the recovery
// once, resubscribes by itself (counted in Reconnects), and broadcasts
// cross again.
func TestRedisAdapterRedisRestart(t *testing.T) {
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
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	startRedis := func() *exec.Cmd {
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "redis-server to listen", 5*time.Second, func() bool {
			c, err := net.Dial("tcp", l.Addr().String())
			if err == nil {
				_ = c.Close()
			}
			return err == nil
		})
		return cmd
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	redis := startRedis()
	t.Cleanup(func() { stop(redis) })

	prefix := testPrefix(t)
	var logA testLog
	opts := Options{URL: fmt.Sprintf("redis://127.0.0.1:%d", port), Prefix: prefix, ReconnectDelayMax: 200 * time.Millisecond}
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
	clientB := dial(t, b, "", "")
	crosses := func(text string) bool {
		_ = a.io.Emit("message", text)
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			select {
			case p := <-clientB.packets:
				if p.text == eventText("message", strconv.Quote(text)) {
					return true
				}
			case <-time.After(50 * time.Millisecond):
			}
		}
		return false
	}
	waitFor(t, "a broadcast to cross", 5*time.Second, func() bool { return crosses("before") })

	stop(redis)
	waitFor(t, "the outage to be seen", 5*time.Second, func() bool { return !ca.Up() && !cb.Up() })
	for i := range 20 {
		_ = a.io.Emit("message", fmt.Sprintf("during %d", i)) // local only; never blocks
	}
	redis = startRedis()
	waitFor(t, "the nodes to resubscribe", 10*time.Second, func() bool { return ca.Up() && cb.Up() })
	waitFor(t, "a broadcast to cross again", 5*time.Second, func() bool { return crosses("after") })

	if s := ca.Stats(); s.Reconnects == 0 {
		t.Errorf("stats = %+v, want reconnects counted", s)
	}
	out := logA.String()
	if strings.Count(out, "redis unavailable") != 1 || strings.Count(out, "redis available again") != 1 {
		t.Errorf("want the outage and the recovery logged once each:\n%s", out)
	}
}

// ServerCount counts the nodes of the namespace.
func TestRedisAdapterServerCount(t *testing.T) {
	testRedis(t)
	prefix := testPrefix(t)
	a := startNode(t, newTestCluster(t, prefix), nil)
	startNode(t, newTestCluster(t, prefix), nil)
	startNode(t, newTestCluster(t, prefix), nil)
	waitFor(t, "three nodes", 5*time.Second, func() bool {
		n, err := a.io.Sockets().Adapter().ServerCount(context.Background())
		return err == nil && n == 3
	})
}
