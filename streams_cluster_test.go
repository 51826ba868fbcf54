package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/redis/go-redis/v9"
)

// The tests of -redis-adapter streams: Go nodes and Node.js nodes
// (test/cluster/node-streams-server.mjs, on @socket.io/redis-streams-adapter
// 0.3.1) sharing one stream, named by the test's prefix.

// streamsGo starts one of our nodes on the stream prefix.
func streamsGo(t *testing.T, redisURL, prefix string, recovery time.Duration) *testServer {
	t.Helper()
	return clusterStartGo(t, redisURL, prefix, func(c *chat.Config) {
		c.RedisAdapter = "streams"
		c.Recovery = recovery
	})
}

// streamsNodeJS is a Node.js node on the Streams adapter.
type streamsNodeJS struct {
	*clusterNodeJS
	Log *syncBuffer // its stdout
}

// streamsStartNodeJS starts test/cluster/node-streams-server.mjs, or skips
// the test when node or the npm packages are missing.
func streamsStartNodeJS(t *testing.T, redisURL, prefix string, recovery time.Duration) *streamsNodeJS {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needs(t, "node is not installed (scripts/setup.sh expects Node >= 20)")
	}
	if _, err := os.Stat("node_modules/@socket.io/redis-streams-adapter/package.json"); err != nil {
		needs(t, "npm packages missing: run scripts/setup.sh (npm ci)")
	}
	cmd := exec.Command(node, "test/cluster/node-streams-server.mjs")
	env := []string{"PORT=0", "REDIS_URL=" + redisURL, "REDIS_PREFIX=" + prefix, "PING_INTERVAL=200",
		fmt.Sprintf("RECOVERY=%d", recovery.Milliseconds())}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NODE_TEST_CONTEXT=") && !strings.HasPrefix(kv, "PORT=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logw := testlog.Writer(t)
	n := &streamsNodeJS{clusterNodeJS: &clusterNodeJS{cmd: cmd, exited: make(chan struct{})}, Log: &syncBuffer{}}
	cmd.Stderr = io.MultiWriter(logw, n.Log)
	if n.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			_, _ = logw.Write([]byte("node: " + line))
			_, _ = n.Log.Write([]byte(line + "\n"))
			if url, ok := strings.CutPrefix(line, "listening on "); ok {
				url, _, _ = strings.Cut(url, " ")
				listening <- url
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() { n.stop(t) })
	select {
	case n.URL = <-listening:
		clusterNodeJSURLs.Store(n.URL, true)
		t.Cleanup(func() { clusterNodeJSURLs.Delete(n.URL) })
	case <-n.exited:
		t.Fatal("the Node.js node exited before listening")
	case <-time.After(20 * time.Second):
		t.Fatal("the Node.js node did not listen within 20s")
	}
	return n
}

// TestStreamsMixedWithNodeJS: two Go nodes and a Node.js node on one
// stream; every message of every client reaches every client once, in
// its sender's order, across the languages.
func TestStreamsMixedWithNodeJS(t *testing.T) {
	testStreamsMixedWithNodeJS(t, clusterRedis(t))
}

// The same on a 3-primary Redis Cluster: -redis names its nodes, the Node.js
// node uses node-redis createCluster; the stream is a key on one of the
// primaries, the requests' channels are classic pub/sub relayed by the
// cluster. Each Go node counts the three nodes (PUBSUB NUMSUB of every
// primary) and is ready.
func TestStreamsOnRedisClusterWithNodeJS(t *testing.T) {
	go1 := testStreamsMixedWithNodeJS(t, shardedCluster(t).URLs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := go1.IO().Sockets().Adapter().ServerCount(ctx); err != nil || got != 3 {
		t.Errorf("ServerCount = %d, %v; want 3", got, err)
	}
	if err := go1.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func testStreamsMixedWithNodeJS(t *testing.T, redisURL string) *chat.Server {
	prefix := clusterPrefix(t)
	go1, go1URL := clusterStartChat(t, redisURL, prefix, func(c *chat.Config) { c.RedisAdapter = "streams" })
	go2 := streamsGo(t, redisURL, prefix, 0)
	js := streamsStartNodeJS(t, redisURL, prefix, 0)
	peers := []clusterPeer{
		clusterDial(t, "go1", go1URL, sioWebSocket, nil),
		clusterDial(t, "go2", go2.URL, sioPolling, nil),
		clusterDial(t, "node", js.URL, sioWebSocket, nil),
	}
	matrix := clusterExchange(t, peers, 20, 20*time.Second)
	for _, k := range []string{"go1→node", "node→go1", "node→go2", "go2→go1"} {
		if matrix[k] != 20 {
			t.Errorf("%s: %d messages, want 20 (%v)", k, matrix[k], matrix)
		}
	}
	return go1
}

// streamsNodes are the nodes of a recovery test: Go nodes (testServer)
// and Node.js nodes, by name.
type streamsNodes struct {
	goNodes map[string]*testServer
	js      map[string]*streamsNodeJS
}

func (n streamsNodes) addr(name string) string {
	if g := n.goNodes[name]; g != nil {
		return g.Addr
	}
	return strings.TrimPrefix(n.js[name].URL, "http://")
}

func (n streamsNodes) log(name string) string {
	if g := n.goNodes[name]; g != nil {
		return g.Log.String()
	}
	return n.js[name].Log.String()
}

// connections counts the connections of socket id in a node's log.
func (n streamsNodes) connections(name, id string) int {
	c := 0
	for _, line := range strings.Split(n.log(name), "\n") {
		if strings.Contains(line, "has connected") && strings.Contains(line, "id="+id+" ") {
			c++
		}
	}
	return c
}

// TestStreamsRecoveryAcrossNodes: with -recovery and the Streams adapter,
// a client moved to another node recovers its session there, with every
// message it missed, once, in order: Go→Go, Go→Node.js, Node.js→Go.
func TestStreamsRecoveryAcrossNodes(t *testing.T) {
	testStreamsRecoveryAcrossNodes(t, clusterRedis(t))
}

// The same on a 3-primary Redis Cluster: the sessions (sio:session:<pid>)
// are keys on whichever primary their slot names, the stream on another.
func TestStreamsRecoveryOnRedisCluster(t *testing.T) {
	testStreamsRecoveryAcrossNodes(t, shardedCluster(t).URLs())
}

func testStreamsRecoveryAcrossNodes(t *testing.T, redisURL string) {
	prefix := clusterPrefix(t)
	const window = 2 * time.Minute
	nodes := streamsNodes{
		goNodes: map[string]*testServer{"a": streamsGo(t, redisURL, prefix, window), "b": streamsGo(t, redisURL, prefix, window)},
		js:      map[string]*streamsNodeJS{"n": streamsStartNodeJS(t, redisURL, prefix, window)},
	}
	lb := clusterStartProxy(t, nodes.addr("a"))
	x := clusterDial(t, "a", lb.url(), sioWebSocket, func(o *sioOptions) {
		o.Reconnection = true
		o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
	})
	y := clusterDial(t, "b", nodes.goNodes["b"].URL, sioWebSocket, nil)
	var gate chan struct{}
	x.c.onReconnectAttempt(func() {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
	})
	var want []string
	say := func(msgs ...string) {
		t.Helper()
		for _, m := range msgs {
			if err := y.c.Emit("user-message", m); err != nil {
				t.Fatal(err)
			}
		}
		clusterWaitFor(t, y, 5*time.Second, "its own messages", func(got []string) bool {
			return slices.Contains(got, msgs[len(msgs)-1])
		})
		want = append(want, msgs...)
	}
	// move cuts x's connection, has y send msgs while x is away, points the
	// balancer at target, and lets x reconnect there.
	move := func(target string, msgs ...string) {
		t.Helper()
		gate = make(chan struct{})
		id := x.c.Id()
		x.c.dropTransport()
		<-x.c.disconnects
		sioEventually(t, 5*time.Second, "the server to see x leave", func() bool {
			return strings.Contains(nodes.log(x.node), "id="+id+" reason=")
		})
		say(msgs...)
		before := nodes.connections(target, id)
		lb.setTarget(nodes.addr(target))
		close(gate)
		select {
		case <-x.c.connects:
		case <-time.After(10 * time.Second):
			t.Fatal("x did not reconnect")
		}
		if !x.c.Recovered() || x.c.Id() != id {
			t.Fatalf("moved to %s as %s: now %s, Recovered() = %v; want recovered", target, id, x.c.Id(), x.c.Recovered())
		}
		sioEventually(t, 5*time.Second, "x's connection to "+target, func() bool {
			return nodes.connections(target, id) > before
		})
		x.node = target
		streamsWaitTexts(t, x, want)
		if got := clusterTexts(x); !slices.Equal(got, want) {
			t.Fatalf("after the move to %s, x got %q, want %q", target, got, want)
		}
	}

	say("before")
	clusterWaitFor(t, x, 5*time.Second, "before", func(got []string) bool { return slices.Contains(got, "before") })
	move("b", "go-go-1", "go-go-2")                  // Go → Go
	move("n", "go-node-1", "go-node-2", "go-node-3") // Go → Node.js
	move("a", "node-go-1", "node-go-2")              // Node.js → Go
	say("after")
	clusterWaitFor(t, x, 5*time.Second, "after", func(got []string) bool { return slices.Contains(got, "after") })
	if got := clusterTexts(x); !slices.Equal(got, want) {
		t.Errorf("x got %q, want %q", got, want)
	}
}

// streamsRedis is a redis-server of one test with the append-only file on
// (fsync always): a SIGKILL loses nothing it acknowledged.
type streamsRedis struct{ clusterRedisServer }

func streamsStartRedis(t *testing.T) *streamsRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		needs(t, "redis-server is not installed (scripts/setup.sh --test installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	_ = l.Close()
	r := &streamsRedis{clusterRedisServer{url: "redis://127.0.0.1:" + port + "/0", port: port, bin: bin, dir: t.TempDir()}}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *streamsRedis) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command(r.bin, "--port", r.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.exited = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := r.cmd, r.exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + r.port, Protocol: 2, MaxRetries: -1})
	defer rc.Close()
	sioEventually(t, 10*time.Second, "redis-server on port "+r.port, func() bool {
		select {
		case <-exited:
			t.Fatalf("redis-server on port %s exited; see %s", r.port, filepath.Join(r.dir, "redis.log"))
		default:
		}
		return rc.Ping(context.Background()).Err() == nil
	})
}

// TestStreamsRedisRestart: Redis is killed in the middle of a chat and
// started again (append-only file on); the messages sent meanwhile by the
// clients of every node (the Go nodes keep theirs in their outbox, the
// Node.js node in its Redis client's offline queue) reach every client of
// every node once, in order, and the chat goes on. /readyz shows the
// outage. With recovery, a Go node delivers its own broadcasts from the
// stream: its clients get them when Redis is back, in the stream's order.
func TestStreamsRedisRestart(t *testing.T) {
	for _, recovery := range []time.Duration{0, 2 * time.Minute} {
		t.Run("recovery="+recovery.String(), func(t *testing.T) { testStreamsRedisRestart(t, recovery) })
	}
}

func testStreamsRedisRestart(t *testing.T, recovery time.Duration) {
	r := streamsStartRedis(t)
	prefix := clusterPrefix(t)
	go1 := clusterStartGo(t, r.url, prefix, func(c *chat.Config) {
		c.RedisAdapter, c.Recovery, c.MetricsAddr = "streams", recovery, "127.0.0.1:0"
	})
	metrics := metricsURL(t, go1)
	go2 := streamsGo(t, r.url, prefix, recovery)
	// The Node.js node reaches Redis through a gate, shut from the kill
	// until the restarted Redis answers PING, that is until it has loaded
	// its append-only file. Redis listens before it loads, and while it
	// loads it answers commands with LOADING (Redis 7.0 serves clients
	// once as soon as it starts loading the file). The Node.js node's
	// redis client writes its offline queue on its first connection, and
	// socket.io-adapter's ClusterAdapter.broadcast drops a broadcast whose
	// XADD failed, even for the node's own clients: a reconnection that
	// fell in those few milliseconds lost the ten messages of the Node.js
	// node's client (seen once in a loaded -race run). That is Node's
	// behaviour, not ours; the Go nodes connect directly and keep their
	// broadcasts through LOADING.
	gate := clusterStartProxy(t, "127.0.0.1:"+r.port)
	js := streamsStartNodeJS(t, "redis://"+gate.addr+"/0", prefix, recovery)
	peers := []clusterPeer{
		clusterDial(t, "go1", go1.URL, sioWebSocket, nil),
		clusterDial(t, "go2", go2.URL, sioWebSocket, nil),
		clusterDial(t, "node", js.URL, sioWebSocket, nil),
	}
	clusterExchange(t, peers, 5, 15*time.Second)
	if code, body := readyz(t, go1.URL); code != 200 {
		t.Fatalf("/readyz before the outage: %d %q", code, body)
	}
	if fams := scrape(t, metrics); value(fams, "socketio_redis_up") != 1 || value(fams, "socketio_redis_published_total") == 0 {
		t.Errorf("before the outage: socketio_redis_up %v, published %v; want 1 and > 0",
			value(fams, "socketio_redis_up"), value(fams, "socketio_redis_published_total"))
	}

	gate.shut()
	r.stop(t)
	clusterWaitLog(t, go1, "redis unavailable", 1, 10*time.Second)
	clusterWaitLog(t, go2, "redis unavailable", 1, 10*time.Second)
	// Node's redis client fails the commands it wrote before it saw the
	// connection close, and queues those after: wait until it has seen it.
	sioEventually(t, 10*time.Second, "the Node.js node to see the outage", func() bool {
		return strings.Contains(js.Log.String(), "redis error")
	})
	if code, _ := readyz(t, go1.URL); code != 503 {
		t.Errorf("/readyz during the outage: %d, want 503", code)
	}
	var sent []string
	for i := range 10 {
		for _, p := range peers {
			m := fmt.Sprintf("outage/%s#%02d", p.name, i)
			if err := p.c.Emit("user-message", m); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, m)
		}
	}
	// The metrics show the outage: go1's client's 10 broadcasts wait in
	// its outbox.
	sioEventually(t, 5*time.Second, "go1's outage broadcasts in its outbox (socketio_redis_publish_queue)", func() bool {
		return value(scrape(t, metrics), "socketio_redis_publish_queue") >= 10
	})
	if fams := scrape(t, metrics); value(fams, "socketio_redis_up") != 0 || value(fams, "socketio_redis_dropped_total") != 0 {
		t.Errorf("during the outage: socketio_redis_up %v, dropped %v; want 0 and 0",
			value(fams, "socketio_redis_up"), value(fams, "socketio_redis_dropped_total"))
	}
	if recovery == 0 {
		// Their own node's clients have them at once.
		clusterWaitFor(t, peers[0], 5*time.Second, "go1's outage messages", func(got []string) bool {
			return slices.Contains(got, "outage/go1-websocket#09")
		})
	}
	r.start(t) // returns once Redis answers PING: it has loaded its file
	gate.open(t)
	clusterWaitLog(t, go1, "redis available again", 1, 10*time.Second)
	clusterWaitLog(t, go2, "redis available again", 1, 10*time.Second)
	for _, p := range peers {
		deadline := time.Now().Add(15 * time.Second)
		for len(clusterDistinct(clusterTexts(p), "outage/")) < len(sent) {
			select {
			case <-p.c.inbox.notify:
			case <-time.After(time.Until(deadline)):
				t.Fatalf("%s: timed out waiting for the outage messages; has %q", p.name, streamsOnly(clusterTexts(p), "outage/"))
			}
		}
	}
	for _, p := range peers {
		seen := map[string]int{}
		last := map[string]string{}
		for _, m := range clusterTexts(p) {
			if !strings.HasPrefix(m, "outage/") {
				continue
			}
			seen[m]++
			sender, _, _ := strings.Cut(m, "#")
			if prev := last[sender]; prev != "" && m <= prev {
				t.Errorf("%s got %s after %s", p.name, m, prev)
			}
			last[sender] = m
		}
		for _, m := range sent {
			if seen[m] != 1 {
				t.Errorf("%s got %s %d times", p.name, m, seen[m])
			}
		}
	}
	if recovery > 0 {
		// One order: the clients of the Go nodes got the outage in the
		// stream's order, the same for both.
		a, b := streamsOnly(clusterTexts(peers[0]), "outage/"), streamsOnly(clusterTexts(peers[1]), "outage/")
		if !slices.Equal(a, b) {
			t.Errorf("go1's client and go2's client saw two orders:\n%q\n%q", a, b)
		}
	}
	sioEventually(t, 5*time.Second, "/readyz 200 after the outage", func() bool {
		code, _ := readyz(t, go1.URL)
		return code == 200
	})
	if fams := scrape(t, metrics); value(fams, "socketio_redis_up") != 1 || value(fams, "socketio_redis_publish_queue") != 0 ||
		value(fams, "socketio_redis_reconnects_total") < 1 || value(fams, "socketio_redis_dropped_total") != 0 {
		t.Errorf("after the outage: socketio_redis_up %v, publish_queue %v, reconnects %v, dropped %v; want 1, 0, >= 1, 0",
			value(fams, "socketio_redis_up"), value(fams, "socketio_redis_publish_queue"),
			value(fams, "socketio_redis_reconnects_total"), value(fams, "socketio_redis_dropped_total"))
	}
	clusterExchange(t, peers, 5, 15*time.Second)
}

func streamsOnly(msgs []string, prefix string) []string {
	var out []string
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			out = append(out, m)
		}
	}
	return out
}

// streamsChild is one of our nodes in a child process (the test binary
// running TestHistoryCrashChild), so that it can be killed with SIGKILL.
func streamsChild(t *testing.T, redisURL, prefix string, recovery time.Duration) *crashServer {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-log-level", "info",
		"-client-dir", sioFakeBundle(t), "-redis", redisURL, "-redis-prefix", prefix,
		"-redis-adapter", "streams", "-recovery", recovery.String(), "-ping-interval", "200ms"}
	js, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHistoryCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashArgsEnv+"="+string(js))
	cmd.Stderr = testlog.Writer(t)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &crashServer{cmd: cmd, done: make(chan error, 1)}
	log := &syncBuffer{}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Msg, Addr, ID, Reason string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				switch rec.Msg {
				case "Server started":
					addr <- rec.Addr
				case "A new user has connected":
					_, _ = fmt.Fprintf(log, "id=%s connected\n", rec.ID)
				}
			}
			t.Logf("child: %s", sc.Text())
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() { s.kill(t) })
	select {
	case a := <-addr:
		s.ts = &testServer{Addr: a, URL: "http://" + a, Log: log}
	case err := <-s.done:
		t.Fatalf("the server exited at start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the server did not start within 60s")
	}
	return s
}

// TestStreamsNodeKilled: a client's node is killed with SIGKILL (it saves
// nothing at the end); the client comes back through the balancer to
// another node and recovers its session there, with every message sent
// while it was away, once, in order.
func TestStreamsNodeKilled(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	const window = 2 * time.Minute
	a := streamsChild(t, redisURL, prefix, window)
	b := streamsGo(t, redisURL, prefix, window)
	lb := clusterStartProxy(t, a.ts.Addr)
	var gate = make(chan struct{})
	x, err := sioOpen(t, lb.url(), sioWebSocket, func(o *sioOptions) {
		o.Reconnection = true
		o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	xp := clusterPeer{name: "x", node: "a", c: x}
	sioEventually(t, 10*time.Second, "a to log x's connection", func() bool {
		return strings.Contains(a.ts.Log.String(), "id="+x.Id()+" ")
	})
	x.onReconnectAttempt(func() {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
	})
	y := clusterDial(t, "b", b.URL, sioWebSocket, nil)
	// x joined a room on a (the chat's "join"? none: its own room) and
	// received a message: its offset is an entry of the stream.
	if err := y.c.Emit("user-message", "before"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, xp, 5*time.Second, "before", func(got []string) bool { return slices.Contains(got, "before") })
	id := x.Id()

	a.kill(t)
	<-x.disconnects
	var want = []string{"before"}
	for i := range 10 {
		m := fmt.Sprintf("while-dead-%02d", i)
		if err := y.c.Emit("user-message", m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	clusterWaitFor(t, y, 5*time.Second, "its own messages", func(got []string) bool {
		return slices.Contains(got, want[len(want)-1])
	})
	lb.setTarget(b.Addr)
	close(gate)
	select {
	case <-x.connects:
	case <-time.After(10 * time.Second):
		t.Fatal("x did not reconnect")
	}
	if !x.Recovered() || x.Id() != id {
		t.Fatalf("on b: id %s (was %s), Recovered() = %v; want the session recovered", x.Id(), id, x.Recovered())
	}
	clusterWaitFor(t, xp, 5*time.Second, "the missed messages", func(got []string) bool { return len(got) >= len(want) })
	if err := y.c.Emit("user-message", "after"); err != nil {
		t.Fatal(err)
	}
	want = append(want, "after")
	clusterWaitFor(t, xp, 5*time.Second, "after", func(got []string) bool { return slices.Contains(got, "after") })
	if got := clusterTexts(xp); !slices.Equal(got, want) {
		t.Errorf("x got %q, want %q", got, want)
	}
}

// TestStreamsTrimmedOffset: a client whose offset is no longer in the
// stream (trimmed) gets a fresh session, not a partial replay, as Node.
func TestStreamsTrimmedOffset(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	const window = 2 * time.Minute
	nodes := streamsNodes{goNodes: map[string]*testServer{
		"a": streamsGo(t, redisURL, prefix, window), "b": streamsGo(t, redisURL, prefix, window)}}
	lb := clusterStartProxy(t, nodes.addr("a"))
	x := clusterDial(t, "a", lb.url(), sioWebSocket, func(o *sioOptions) {
		o.Reconnection = true
		o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
	})
	y := clusterDial(t, "b", nodes.goNodes["b"].URL, sioWebSocket, nil)
	gate := make(chan struct{})
	x.c.onReconnectAttempt(func() {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
	})
	if err := y.c.Emit("user-message", "before"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, x, 5*time.Second, "before", func(got []string) bool { return slices.Contains(got, "before") })
	id := x.c.Id()
	x.c.dropTransport()
	<-x.c.disconnects
	sioEventually(t, 5*time.Second, "the server to see x leave", func() bool {
		return strings.Contains(nodes.log("a"), "id="+id+" reason=")
	})
	if err := y.c.Emit("user-message", "trimmed"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, y, 5*time.Second, "trimmed", func(got []string) bool { return slices.Contains(got, "trimmed") })
	rc := redis.NewClient(&redis.Options{Addr: clusterSharedRedis, Protocol: 2})
	defer rc.Close()
	if err := rc.XTrimMaxLen(t.Context(), prefix, 0).Err(); err != nil {
		t.Fatal(err)
	}
	lb.setTarget(nodes.addr("b"))
	close(gate)
	select {
	case <-x.c.connects:
	case <-time.After(10 * time.Second):
		t.Fatal("x did not reconnect")
	}
	if x.c.Recovered() || x.c.Id() == id {
		t.Fatalf("after the trim: id %s (was %s), Recovered() = %v; want a fresh session", x.c.Id(), id, x.c.Recovered())
	}
	clusterWaitConnected(t, x.c.Id())
	if err := y.c.Emit("user-message", "after"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, x, 5*time.Second, "after", func(got []string) bool { return slices.Contains(got, "after") })
	if got, want := clusterTexts(x), []string{"before", "after"}; !slices.Equal(got, want) {
		t.Errorf("x got %q, want %q", got, want)
	}
}

// streamsWaitTexts waits until p has received as many messages as want,
// and shows what it has when it does not.
func streamsWaitTexts(t *testing.T, p clusterPeer, want []string) {
	t.Helper()
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for len(clusterTexts(p)) < len(want) {
		select {
		case <-p.c.inbox.notify:
		case <-timer.C:
			t.Fatalf("%s: timed out waiting for %q; has %q", p.name, want, clusterTexts(p))
		}
	}
}
