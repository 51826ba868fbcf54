package main

// Tests of several nodes joined through Redis (-redis). Our nodes
// with each other, with a Node.js socket.io 4.8 + @socket.io/redis-adapter
// 8.x node (test/cluster/node-server.mjs), through a Redis restart, after a
// node's death, and behind nginx (examples/nginx/nginx.conf). Each test
// uses its own key prefix on the shared Redis, so tests do not hear each
// other; the Redis restart test runs its own redis-server.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/chatio/socketio-chat/chat"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/gorilla/websocket"
)

// clusterSharedRedis is the Redis the test command starts (scripts/setup.sh --test).
const clusterSharedRedis = "127.0.0.1:6379"

// The log lines of an outage (internal/redisadapter/cluster.go).
const (
	clusterLostLine = "redis unavailable"
	clusterBackLine = "redis available again"
)

// clusterRedis returns the URL of the shared Redis, or skips the test.
func clusterRedis(tb testing.TB) string {
	tb.Helper()
	c, err := net.DialTimeout("tcp", clusterSharedRedis, time.Second)
	if err != nil {
		needs(tb, "no Redis on %s (scripts/setup.sh --test starts one): %v", clusterSharedRedis, err)
	}
	_ = c.Close()
	return "redis://" + clusterSharedRedis + "/0"
}

// clusterPrefix is a Redis key prefix of this test alone.
func clusterPrefix(tb testing.TB) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(tb.Name(), "-")
	return "test-" + name + "-" + hex.EncodeToString(b)
}

// clusterStartGo starts one of our nodes on the cluster, with a stand-in
// client bundle (loading the real one takes seconds under -race) unless
// mutate sets ClientDir back.
func clusterStartGo(tb testing.TB, redisURL, prefix string, mutate ...func(*chat.Config)) *testServer {
	tb.Helper()
	bundle := sioFakeBundle(tb)
	ts := startTestServer(tb, func(c *chat.Config) {
		c.Redis, c.RedisPrefix, c.ClientDir = redisURL, prefix, bundle
		sioFastPing(c)
		for _, m := range mutate {
			m(c)
		}
	})
	clusterTrackLog(tb, ts.Log)
	return ts
}

// clusterLogs are the logs of the Go nodes of the running test.
var clusterLogs struct {
	sync.Mutex
	logs map[*syncBuffer]bool
}

func clusterTrackLog(tb testing.TB, log *syncBuffer) {
	clusterLogs.Lock()
	defer clusterLogs.Unlock()
	if clusterLogs.logs == nil {
		clusterLogs.logs = map[*syncBuffer]bool{}
	}
	clusterLogs.logs[log] = true
	tb.Cleanup(func() {
		clusterLogs.Lock()
		defer clusterLogs.Unlock()
		delete(clusterLogs.logs, log)
	})
}

// clusterWaitConnected waits until a Go node has logged the connection of
// socket id. The client is connected once it has the CONNECT answer, which
// can come before the node's connection handler has run (it logs): tests
// start once it has, as sioDialErr does.
func clusterWaitConnected(tb testing.TB, id string) {
	tb.Helper()
	sioEventually(tb, 5*time.Second, "a node to log the connection of "+id, func() bool {
		clusterLogs.Lock()
		defer clusterLogs.Unlock()
		for log := range clusterLogs.logs {
			if strings.Contains(log.String(), "id="+id+" ") {
				return true
			}
		}
		return false
	})
}

// clusterPeer is a client and the name of the node it is connected to.
type clusterPeer struct {
	name string // e.g. go1-websocket
	node string // e.g. go1
	c    *sioClient
}

// clusterDial connects a client to a node at url (ours, Node's or nginx)
// in the given mode with sioOpen and waits until one of our nodes logged
// the connection (Node's node: until "connect").
func clusterDial(tb testing.TB, node, url string, mode sioMode, mutate func(*sioOptions)) clusterPeer {
	tb.Helper()
	c, err := sioOpen(tb, url, mode, mutate)
	if err != nil {
		tb.Fatalf("%s client to %s: %v", mode, url, err)
	}
	if !clusterIsNodeJS(url) {
		clusterWaitConnected(tb, c.Id())
	}
	return clusterPeer{name: node + "-" + string(mode), node: node, c: c}
}

// clusterUnordered ends the name of a peer whose messages clusterExchange
// does not expect in order (still each exactly once): a Node.js node on a
// Redis Cluster publishes each message through a random cluster node.
const clusterUnordered = "-unordered"

// clusterRound names the messages of one exchange.
var clusterRound atomic.Int64

// clusterExchange makes every peer send `each` chat messages and checks that
// every peer receives every one of them exactly once and, for each sender,
// in the order it sent them. It returns how many messages went from the
// clients of each node to the clients of each node ("go1→node": n).
//
// Duplicates can arrive after the last expected message: once everyone has
// everything, one peer of each node sends a barrier, and the check waits for
// every barrier. A node handles the Redis messages of its subscription in
// order, and a node only sends its barrier after the others published all
// their messages, so a late duplicate at a node (an echo of its own message
// or a second copy of another's) reaches its clients before the barrier
// of another node does.
func clusterExchange(t *testing.T, peers []clusterPeer, each int, timeout time.Duration) map[string]int {
	t.Helper()
	round := fmt.Sprintf("r%d", clusterRound.Add(1))
	msg := func(sender string, seq int) string { return fmt.Sprintf("%s/%s#%04d", round, sender, seq) }

	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := p.c.Emit("user-message", msg(p.name, i)); err != nil {
					t.Errorf("%s: emit: %v", p.name, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	want := len(peers) * each
	deadline := time.Now().Add(timeout)
	for _, p := range peers {
		clusterWaitFor(t, p, time.Until(deadline), fmt.Sprintf("%d messages of %s", want, round), func(got []string) bool {
			return len(clusterDistinct(got, round+"/")) >= want
		})
	}

	// Barriers: one peer per node.
	barriers := map[string]string{}
	for _, p := range peers {
		if _, ok := barriers[p.node]; !ok {
			barriers[p.node] = round + "/barrier/" + p.node
			if err := p.c.Emit("user-message", barriers[p.node]); err != nil {
				t.Fatalf("%s: emit barrier: %v", p.name, err)
			}
		}
	}
	for _, p := range peers {
		clusterWaitFor(t, p, time.Until(deadline)+5*time.Second, "the barriers", func(got []string) bool {
			return len(clusterDistinct(got, round+"/barrier/")) == len(barriers)
		})
	}

	matrix := map[string]int{}
	nodeOf := map[string]string{}
	for _, p := range peers {
		nodeOf[p.name] = p.node
	}
	for _, p := range peers {
		seen := map[string]int{}
		last := map[string]int{}
		for _, m := range clusterTexts(p) {
			if !strings.HasPrefix(m, round+"/") || strings.HasPrefix(m, round+"/barrier/") {
				continue
			}
			seen[m]++
			sender, seqText, _ := strings.Cut(strings.TrimPrefix(m, round+"/"), "#")
			seq, _ := strconv.Atoi(seqText)
			if prev, ok := last[sender]; ok && seq <= prev && !strings.HasSuffix(sender, clusterUnordered) {
				t.Errorf("%s got %s after #%04d: out of order", p.name, m, prev)
			}
			last[sender] = seq
			if seen[m] == 1 {
				matrix[nodeOf[sender]+"→"+p.node]++
			}
		}
		for _, s := range peers {
			for i := range each {
				switch n := seen[msg(s.name, i)]; {
				case n == 0:
					t.Errorf("%s never got %s", p.name, msg(s.name, i))
				case n > 1:
					t.Errorf("%s got %s %d times", p.name, msg(s.name, i), n)
				}
			}
		}
	}
	return matrix
}

// clusterTexts is the text of every message a peer received, in order.
func clusterTexts(p clusterPeer) []string {
	var out []string
	for _, args := range p.c.inbox.snapshot() {
		if len(args) > 0 {
			if s, ok := args[0].(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func clusterDistinct(msgs []string, prefix string) map[string]bool {
	set := map[string]bool{}
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			set[m] = true
		}
	}
	return set
}

// clusterWaitFor waits until cond holds for the messages p received.
func clusterWaitFor(t *testing.T, p clusterPeer, timeout time.Duration, what string, cond func([]string) bool) {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for !cond(clusterTexts(p)) {
		select {
		case <-p.c.inbox.notify:
		case <-timer.C:
			t.Fatalf("%s: timed out after %v waiting for %s (has %d messages)", p.name, timeout, what, len(clusterTexts(p)))
		}
	}
}

// clusterWaitLog waits until a node's log has n lines containing text.
func clusterWaitLog(t *testing.T, ts *testServer, text string, n int, timeout time.Duration) {
	t.Helper()
	sioEventually(t, timeout, fmt.Sprintf("%d log lines %q", n, text), func() bool {
		return strings.Count(ts.Log.String(), text) >= n
	})
}

// clusterNodeOf tells which node a client is connected to, from the node
// logs ("A new user has connected" id=...).
func clusterNodeOf(t *testing.T, c *sioClient, nodes map[string]*testServer) string {
	t.Helper()
	var found string
	sioEventually(t, 5*time.Second, "the connect log line of "+c.Id(), func() bool {
		for name, ts := range nodes {
			if strings.Contains(ts.Log.String(), "id="+c.Id()+" ") {
				found = name
				return true
			}
		}
		return false
	})
	return found
}

func TestClusterBroadcastExactlyOnce(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	var peers []clusterPeer
	for i := 1; i <= 3; i++ {
		node := clusterStartGo(t, redisURL, prefix)
		for _, mode := range []sioMode{sioWebSocket, sioPolling} {
			peers = append(peers, clusterDial(t, fmt.Sprintf("go%d", i), node.URL, mode, nil))
		}
	}
	matrix := clusterExchange(t, peers, 25, 30*time.Second)
	t.Logf("messages delivered, by node of sender → node of receiver: %v", matrix)
	for _, from := range []string{"go1", "go2", "go3"} {
		for _, to := range []string{"go1", "go2", "go3"} {
			if got, want := matrix[from+"→"+to], 2*2*25; got != want {
				t.Errorf("%s→%s: %d messages, want %d", from, to, got, want)
			}
		}
	}
}

// A broadcast to rooms and one to a single room take other channels than
// io.emit; the chat only uses io.emit, so this drives the adapter directly
// through a node's Socket.IO server.
func TestClusterRoomsAndServerCount(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	a, aURL := clusterStartChat(t, redisURL, prefix)
	b, bURL := clusterStartChat(t, redisURL, prefix)
	pa := clusterDial(t, "a", aURL, sioWebSocket, nil)
	pb := clusterDial(t, "b", bURL, sioWebSocket, nil)
	nsA, nsB := a.IO().Sockets(), b.IO().Sockets()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if got, err := nsA.Adapter().ServerCount(ctx); err != nil || got != 2 {
		t.Errorf("ServerCount = %d, %v; want 2", got, err)
	}
	// Make b's client join "room1" from node a: a request to every node.
	nsA.SocketsJoin("room1")
	sioEventually(t, 5*time.Second, "b's socket in room1", func() bool {
		return slices.Contains(nsB.Rooms(), "room1")
	})
	for _, err := range []error{
		nsA.To("room1").Emit("message", "to room1"),         // channel prefix#/#room1#
		nsA.To("nobody-here").Emit("message", "to nobody"),  // a room without members
		nsA.Except("room1").Emit("message", "except room1"), // prefix#/# with except
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	_ = nsA.Emit("message", "fence")
	for _, p := range []clusterPeer{pa, pb} {
		clusterWaitFor(t, p, 5*time.Second, "the fence", func(got []string) bool { return slices.Contains(got, "fence") })
	}
	if got, want := clusterTexts(pa), []string{"to room1", "fence"}; !slices.Equal(got, want) {
		t.Errorf("a got %q, want %q", got, want)
	}
	if got, want := clusterTexts(pb), []string{"to room1", "fence"}; !slices.Equal(got, want) {
		t.Errorf("b got %q, want %q", got, want)
	}

	sockets, err := nsA.FetchSockets(ctx)
	if err != nil {
		t.Errorf("FetchSockets: %v", err)
	}
	var got []string
	for _, s := range sockets {
		got = append(got, s.ID)
	}
	sort.Strings(got)
	want := []string{pa.c.Id(), pb.c.Id()}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("FetchSockets = %v, want %v", got, want)
	}
}

// The mixed cluster: two of our nodes and a Node.js node on the same Redis
// and prefix. Go→Go, Go→Node, Node→Go and Node→Node each exactly once; then
// the Node.js node is killed (SIGKILL) and the Go nodes carry on.
func TestClusterMixedWithNodeJS(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	njs := clusterStartNodeJS(t, redisURL, prefix)
	go1, go1URL := clusterStartChat(t, redisURL, prefix)
	go2 := clusterStartGo(t, redisURL, prefix)
	peers := []clusterPeer{
		clusterDial(t, "go1", go1URL, sioWebSocket, nil),
		clusterDial(t, "go1", go1URL, sioPolling, nil),
		clusterDial(t, "go2", go2.URL, sioUpgrade, nil),
		clusterDial(t, "node", njs.URL, sioWebSocket, nil),
		clusterDial(t, "node", njs.URL, sioPolling, nil),
	}
	const each = 20
	matrix := clusterExchange(t, peers, each, 30*time.Second)
	t.Logf("messages delivered, by node of sender → node of receiver: %v", matrix)
	clients := map[string]int{"go1": 2, "go2": 1, "node": 2}
	for from, nFrom := range clients {
		for to, nTo := range clients {
			if got, want := matrix[from+"→"+to], nFrom*each*nTo; got != want {
				t.Errorf("%s→%s: %d messages, want %d", from, to, got, want)
			}
		}
	}

	// Payloads keep their shape across the Go and Node nodes, binary
	// included (a Go buffer is a Node Buffer on the way), from WebSocket
	// and from polling senders.
	payloads := []any{"héllo 世界", 42.5, true, nil, []any{1.0, "two", nil},
		map[string]any{"a": []any{1.0, "x"}, "b": map[string]any{"c": false}}, []byte{0, 1, 2, 255}}
	for _, route := range [][2]clusterPeer{{peers[0], peers[4]}, {peers[3], peers[2]}, {peers[1], peers[3]}, {peers[4], peers[0]}} {
		from, to := route[0], route[1]
		for i, want := range payloads {
			// Everyone gets every message: wait for all, one at a time.
			before := make([]int, len(peers))
			for j, p := range peers {
				before[j] = len(p.c.inbox.snapshot())
			}
			if err := from.c.Emit("user-message", want); err != nil {
				t.Fatal(err)
			}
			for j, p := range peers {
				clusterWaitFor(t, p, 10*time.Second, fmt.Sprintf("payload %d %#v from %s", i, want, from.name), func([]string) bool {
					return len(p.c.inbox.snapshot()) > before[j]
				})
				got := p.c.inbox.snapshot()[before[j]]
				if p.name == to.name && (len(got) != 1 || !reflect.DeepEqual(got[0], want)) {
					t.Errorf("%s→%s payload %d: got %#v, want %#v", from.name, to.name, i, got, want)
				}
			}
		}
	}

	// Requests too: a Go node counts the Node node and fetches its sockets.
	ns1 := go1.IO().Sockets()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := ns1.Adapter().ServerCount(ctx); err != nil || got != 3 {
		t.Errorf("ServerCount = %d, %v; want 3", got, err)
	}
	sockets, err := ns1.FetchSockets(ctx)
	if err != nil {
		t.Errorf("FetchSockets: %v", err)
	}
	var got, want []string
	for _, s := range sockets {
		got = append(got, s.ID)
	}
	for _, p := range peers {
		want = append(want, p.c.Id())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FetchSockets = %v, want %v (every node's sockets)", got, want)
	}

	njs.kill(t)
	matrix = clusterExchange(t, peers[:3], each, 30*time.Second)
	t.Logf("after the Node.js node was killed: %v", matrix)
}

// Redis restarts: each node logs the outage once and its return once; while
// Redis is down, the clients of a node still chat with each other; then
// cross-node broadcasts resume, exactly once, and what was said during the
// outage is not replayed to the other node.
func TestClusterRedisRestart(t *testing.T) {
	redis := clusterStartRedis(t)
	prefix := clusterPrefix(t)
	a, b := clusterStartGo(t, redis.url, prefix), clusterStartGo(t, redis.url, prefix)
	a1, a2 := clusterDial(t, "a", a.URL, sioWebSocket, nil), clusterDial(t, "a", a.URL, sioPolling, nil)
	b1, b2 := clusterDial(t, "b", b.URL, sioWebSocket, nil), clusterDial(t, "b", b.URL, sioPolling, nil)
	a2.name, b2.name = "a-polling", "b-polling"
	all := []clusterPeer{a1, a2, b1, b2}
	clusterExchange(t, all, 5, 20*time.Second)

	redis.stop(t)
	for _, ts := range []*testServer{a, b} {
		clusterWaitLog(t, ts, clusterLostLine, 1, 10*time.Second)
	}
	// Local chat during the outage, timed: a publish to a dead Redis must
	// not hold up the local delivery.
	for _, pair := range [][2]clusterPeer{{a1, a2}, {b1, b2}} {
		from, to := pair[0], pair[1]
		start := time.Now()
		for i := range 5 {
			if err := from.c.Emit("user-message", fmt.Sprintf("outage/%s#%d", from.name, i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range pair {
			clusterWaitFor(t, p, 5*time.Second, "the local messages sent during the outage", func(got []string) bool {
				return len(clusterDistinct(got, "outage/"+from.name+"#")) == 5
			})
		}
		t.Logf("outage: %s→%s, 5 messages in %v", from.name, to.name, time.Since(start).Round(time.Millisecond))
	}

	redis.start(t)
	for _, ts := range []*testServer{a, b} {
		clusterWaitLog(t, ts, clusterBackLine, 1, 15*time.Second)
	}
	clusterExchange(t, all, 5, 20*time.Second)

	for _, p := range all {
		for _, m := range clusterTexts(p) {
			if strings.HasPrefix(m, "outage/") && !strings.HasPrefix(m, "outage/"+p.node+"-") {
				t.Errorf("%s got %s from the other node: sent during the outage, it must stay local", p.name, m)
			}
		}
	}
	for name, ts := range map[string]*testServer{"a": a, "b": b} {
		log := ts.Log.String()
		if n := strings.Count(log, clusterLostLine); n != 1 {
			t.Errorf("node %s logged %q %d times, want once", name, clusterLostLine, n)
		}
		if n := strings.Count(log, clusterBackLine); n != 1 {
			t.Errorf("node %s logged %q %d times, want once", name, clusterBackLine, n)
		}
	}
}

// A node dies: its client, which reaches the cluster through an address
// that now leads to a survivor (what a load balancer does), reconnects to
// the survivor, and the cluster goes on, exactly once.
func TestClusterNodeDeath(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	nodes := map[string]*testServer{}
	for _, name := range []string{"a", "b", "c"} {
		nodes[name] = clusterStartGo(t, redisURL, prefix)
	}
	lb := clusterStartProxy(t, nodes["a"].Addr)
	x := clusterDial(t, "a", lb.url(), sioWebSocket, func(o *sioOptions) {
		o.Reconnection = true
		o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 200*time.Millisecond
	})
	x.name = "x"
	y := clusterDial(t, "b", nodes["b"].URL, sioWebSocket, nil)
	z := clusterDial(t, "c", nodes["c"].URL, sioPolling, nil)
	if got := clusterNodeOf(t, x.c, nodes); got != "a" {
		t.Fatalf("x is on %s, want a", got)
	}
	clusterExchange(t, []clusterPeer{x, y, z}, 10, 20*time.Second)

	lb.setTarget(nodes["b"].Addr)
	firstID := x.c.Id()
	nodes["a"].Stop(t)
	select {
	case <-x.c.connects:
	case <-time.After(10 * time.Second):
		t.Fatal("x did not reconnect within 10s")
	}
	sioEventually(t, 5*time.Second, "x connected with a new id", func() bool { return x.c.Connected() && x.c.Id() != firstID })
	delete(nodes, "a")
	if got := clusterNodeOf(t, x.c, nodes); got != "b" {
		t.Fatalf("x reconnected to %s, want b", got)
	}
	x.node = "b"
	clusterExchange(t, []clusterPeer{x, y, z}, 10, 20*time.Second)
}

// BenchmarkClusterBroadcast measures broadcasts across two of our nodes on
// the shared Redis, with 10 WebSocket clients on each node. One op is one
// chat message, sent alternately by a client of either node and delivered to
// all 20 clients (10 on the sender's node, 10 across Redis). "burst" sends
// b.N messages as fast as it can; "paced" sends 500 per second. It reports
// messages and deliveries per second and the latency from emit to receipt.
//
//	go test -run '^$' -bench BenchmarkClusterBroadcast -benchtime 4000x .
func BenchmarkClusterBroadcast(b *testing.B) {
	for _, bc := range []struct {
		name  string
		every time.Duration
	}{{"burst", 0}, {"paced", 2 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) { clusterBenchBroadcast(b, 10, bc.every) })
	}
}

func clusterBenchBroadcast(b *testing.B, perNode int, every time.Duration) {
	redisURL, prefix := clusterRedis(b), clusterPrefix(b)
	var (
		mu        sync.Mutex
		same      []time.Duration // sender and receiver on one node
		cross     []time.Duration // across Redis
		delivered atomic.Int64
		done      = make(chan struct{})
	)
	total := int64(b.N * 2 * perNode)
	nodeName := []string{"a", "b"}
	var (
		senders []*clusterRawClient
		servers []*chat.Server
	)
	for _, node := range nodeName {
		s, url := clusterStartChat(b, redisURL, prefix, func(c *chat.Config) {
			c.LogLevel = slog.LevelWarn
			// Two senders emit thousands of messages: lift the per-client
			// event rate limit and send queue bounds.
			c.EventRate, c.EventBurst = 1e9, 1<<30
			c.SendQueuePackets, c.SendQueueBytes = 1<<20, 1<<30
		})
		servers = append(servers, s)
		for i := range perNode {
			c := clusterRawDial(b, url, func(text string) {
				at := time.Now()
				from, nanos, _ := strings.Cut(text, " ")
				sent, _ := strconv.ParseInt(nanos, 10, 64)
				d := at.Sub(time.Unix(0, sent))
				mu.Lock()
				if from == node {
					same = append(same, d)
				} else {
					cross = append(cross, d)
				}
				mu.Unlock()
				if delivered.Add(1) == total {
					close(done)
				}
			})
			if i == 0 {
				senders = append(senders, c)
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var tick *time.Ticker
	if every > 0 {
		tick = time.NewTicker(every)
		defer tick.Stop()
	}
	for i := range b.N {
		if tick != nil {
			<-tick.C
		}
		if err := senders[i%2].emit(nodeName[i%2] + " " + strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(30*time.Second + time.Duration(b.N)*every):
		for i, s := range servers {
			b.Logf("node %s: %+v", nodeName[i], s.Cluster().Stats())
		}
		b.Fatalf("%d of %d deliveries after 30s", delivered.Load(), total)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "deliveries/s")
	for _, l := range []struct {
		name string
		d    []time.Duration
	}{{"same", same}, {"cross", cross}} {
		slices.Sort(l.d)
		b.ReportMetric(float64(l.d[len(l.d)/2].Microseconds())/1000, l.name+"-p50-ms")
		b.ReportMetric(float64(l.d[len(l.d)*99/100].Microseconds())/1000, l.name+"-p99-ms")
	}
}

// clusterRawClient is a bare Socket.IO client over one WebSocket (Engine.IO
// v4), for the benchmark: it costs little, so the numbers are the servers'.
type clusterRawClient struct {
	conn *websocket.Conn
	wmu  sync.Mutex
}

// clusterRawDial connects to the main namespace and calls onMessage, from
// its reading goroutine, with the text of every "message" event.
func clusterRawDial(tb testing.TB, baseURL string, onMessage func(text string)) *clusterRawClient {
	tb.Helper()
	u := "ws" + strings.TrimPrefix(baseURL, "http") + "/socket.io/?EIO=4&transport=websocket"
	conn, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(u, nil)
	if err != nil {
		tb.Fatalf("dial %s: %v", u, err)
	}
	c := &clusterRawClient{conn: conn}
	tb.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, open, err := conn.ReadMessage(); err != nil || open[0] != '0' {
		tb.Fatalf("engine.io open: %q, %v", open, err)
	}
	if err := c.write("40"); err != nil {
		tb.Fatal(err)
	}
	if _, ack, err := conn.ReadMessage(); err != nil || !strings.HasPrefix(string(ack), "40") {
		tb.Fatalf("socket.io connect: %q, %v", ack, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go func() {
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			switch {
			case string(msg) == "2":
				_ = c.write("3")
			case bytes.HasPrefix(msg, []byte(`42["message",`)):
				var args []string
				if json.Unmarshal(msg[2:], &args) == nil && len(args) >= 2 {
					onMessage(args[1])
				}
			}
		}
	}()
	return c
}

func (c *clusterRawClient) write(text string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, []byte(text))
}

// emit sends a chat message.
func (c *clusterRawClient) emit(text string) error {
	b, _ := json.Marshal([]string{"user-message", text})
	return c.write("42" + string(b))
}

// clusterStartChat builds a chat server as main does and serves it with
// httptest, for tests that drive its Socket.IO server directly.
func clusterStartChat(t testing.TB, redisURL, prefix string, mutate ...func(*chat.Config)) (*chat.Server, string) {
	t.Helper()
	cfg := chat.DefaultConfig()
	cfg.LogLevel = slog.LevelDebug
	cfg.Redis, cfg.RedisPrefix, cfg.ClientDir = redisURL, prefix, sioFakeBundle(t)
	sioFastPing(&cfg)
	for _, m := range mutate {
		m(&cfg)
	}
	logBuf := &syncBuffer{}
	s, err := chat.New(cfg, slog.New(slog.NewTextHandler(io.MultiWriter(logBuf, testlog.Writer(t)), &slog.HandlerOptions{Level: cfg.LogLevel})))
	if err != nil {
		t.Fatal(err)
	}
	clusterTrackLog(t, logBuf)
	srv := httptest.NewServer(s)
	t.Cleanup(func() {
		s.Close()
		srv.Close()
	})
	return s, srv.URL
}

// Connection state recovery (-recovery) with Redis is kept per node: a
// client that comes back to its node within the window gets what it missed,
// including the broadcasts of other nodes; one that comes back to another
// node (its node died, or the balancer moved it) starts a new session and
// does not get them.
func TestClusterRecovery(t *testing.T) {
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	nodes := map[string]*testServer{}
	for _, name := range []string{"a", "b"} {
		nodes[name] = clusterStartGo(t, redisURL, prefix, func(c *chat.Config) { c.Recovery = 2 * time.Minute })
	}
	lb := clusterStartProxy(t, nodes["a"].Addr)
	x := clusterDial(t, "a", lb.url(), sioWebSocket, func(o *sioOptions) {
		o.Reconnection = true
		o.ReconnectionDelay, o.ReconnectionDelayMax = 50*time.Millisecond, 50*time.Millisecond
	})
	y := clusterDial(t, "b", nodes["b"].URL, sioWebSocket, nil)
	var gate chan struct{}
	x.c.onReconnectAttempt(func() {
		select {
		case <-gate: // held until the messages it must miss went out
		case <-time.After(10 * time.Second):
		}
	})

	// drop cuts x's WebSocket (no DISCONNECT), lets y send msgs while x is
	// away, points the balancer at target and lets x reconnect.
	drop := func(target string, msgs ...string) {
		t.Helper()
		gate = make(chan struct{})
		id := x.c.Id()
		x.c.dropTransport()
		<-x.c.disconnects
		sioEventually(t, 5*time.Second, "the server to see x leave", func() bool {
			return strings.Contains(nodes[x.node].Log.String(), "id="+id+" reason=")
		})
		for _, m := range msgs {
			if err := y.c.Emit("user-message", m); err != nil {
				t.Fatal(err)
			}
		}
		clusterWaitFor(t, y, 5*time.Second, "its own messages", func(got []string) bool {
			return slices.Contains(got, msgs[len(msgs)-1])
		})
		lb.setTarget(nodes[target].Addr)
		close(gate)
		select {
		case <-x.c.connects:
		case <-time.After(10 * time.Second):
			t.Fatal("x did not reconnect")
		}
		x.node = clusterNodeOf(t, x.c, nodes)
	}

	if err := y.c.Emit("user-message", "before"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, x, 5*time.Second, "before", func(got []string) bool { return slices.Contains(got, "before") })

	// Back to the same node: recovered, with the other node's messages.
	drop("a", "missed-1", "missed-2")
	if !x.c.Recovered() || x.node != "a" {
		t.Errorf("back on %s: Recovered() = %v, want true on a", x.node, x.c.Recovered())
	}
	clusterWaitFor(t, x, 5*time.Second, "the missed messages", func(got []string) bool {
		return slices.Equal(got, []string{"before", "missed-1", "missed-2"})
	})

	// To the other node: a new session, the missed messages are lost.
	drop("b", "lost-1", "lost-2")
	if x.c.Recovered() || x.node != "b" {
		t.Errorf("moved to %s: Recovered() = %v, want false on b", x.node, x.c.Recovered())
	}
	if err := y.c.Emit("user-message", "after"); err != nil {
		t.Fatal(err)
	}
	clusterWaitFor(t, x, 5*time.Second, "after", func(got []string) bool { return slices.Contains(got, "after") })
	if got, want := clusterTexts(x), []string{"before", "missed-1", "missed-2", "after"}; !slices.Equal(got, want) {
		t.Errorf("x got %q, want %q", got, want)
	}
}

// clusterNodeJS is a Node.js node started by clusterStartNodeJS.
type clusterNodeJS struct {
	URL    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	once   sync.Once
}

// clusterStartNodeJS starts test/cluster/node-server.mjs, or skips the test
// when node or the npm packages are missing.
func clusterStartNodeJS(t *testing.T, redisURL, prefix string) *clusterNodeJS {
	t.Helper()
	return clusterStartNodeJSScript(t, "test/cluster/node-server.mjs", redisURL, prefix)
}

// clusterStartNodeJSScript starts script, a Node.js node of the same
// interface as test/cluster/node-server.mjs.
func clusterStartNodeJSScript(t *testing.T, script, redisURL, prefix string) *clusterNodeJS {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		needs(t, "node is not installed (scripts/setup.sh expects Node >= 20)")
	}
	if _, err := os.Stat("node_modules/@socket.io/redis-adapter/package.json"); err != nil {
		needs(t, "npm packages missing: run scripts/setup.sh (npm ci)")
	}
	cmd := exec.Command(node, script)
	env := []string{"PORT=0", "REDIS_URL=" + redisURL, "REDIS_PREFIX=" + prefix, "PING_INTERVAL=200"}
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
	cmd.Stderr = logw
	n := &clusterNodeJS{cmd: cmd, exited: make(chan struct{})}
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

// clusterNodeJSURLs are the URLs of the running Node.js nodes.
var clusterNodeJSURLs sync.Map

func clusterIsNodeJS(url string) bool {
	_, ok := clusterNodeJSURLs.Load(url)
	return ok
}

// stop asks the node to quit (stdin closed, SIGTERM), then kills it.
func (n *clusterNodeJS) stop(t *testing.T) {
	n.once.Do(func() {
		_ = n.stdin.Close()
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			t.Error("the Node.js node did not exit within 5s of SIGTERM; killing it")
			_ = n.cmd.Process.Kill()
			<-n.exited
		}
	})
}

// kill kills the node at once, as a crash would.
func (n *clusterNodeJS) kill(t *testing.T) {
	n.once.Do(func() {
		_ = n.cmd.Process.Kill()
		select {
		case <-n.exited:
		case <-time.After(5 * time.Second):
			t.Error("the Node.js node survived SIGKILL for 5s")
		}
	})
}

// clusterRedisServer is a redis-server of one test, on its own port.
type clusterRedisServer struct {
	url, port string
	bin       string
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// clusterStartRedis starts redis-server on a free loopback port, or skips
// the test when it is not installed.
func clusterStartRedis(t *testing.T) *clusterRedisServer {
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
	r := &clusterRedisServer{url: "redis://127.0.0.1:" + port + "/0", port: port, bin: bin, dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *clusterRedisServer) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command(r.bin, "--port", r.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	r.exited = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := r.cmd, r.exited
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	sioEventually(t, 10*time.Second, "redis-server on port "+r.port, func() bool {
		select {
		case <-exited:
			t.Fatalf("redis-server on port %s exited; see %s", r.port, filepath.Join(r.dir, "redis.log"))
		default:
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+r.port, 100*time.Millisecond)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && line == "+PONG\r\n"
	})
}

// stop kills redis-server (SIGKILL: a crash) and waits for it to exit.
// A second call does nothing.
func (r *clusterRedisServer) stop(t *testing.T) {
	t.Helper()
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Kill()
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		t.Error("redis-server survived SIGKILL for 5s")
	}
}

// clusterProxy forwards TCP connections to a target that can change: a
// stand-in for a load balancer that stops sending clients to a dead node.
// It can also be shut (its port refuses connections) and opened again on
// the same port.
type clusterProxy struct {
	addr   string
	target atomic.Value // string
	mu     sync.Mutex
	ln     net.Listener // nil while shut or closed
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func clusterStartProxy(t *testing.T, target string) *clusterProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &clusterProxy{addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	p.target.Store(target)
	p.wg.Add(1)
	go p.serve(ln)
	t.Cleanup(p.close)
	return p
}

func (p *clusterProxy) url() string             { return "http://" + p.addr }
func (p *clusterProxy) setTarget(target string) { p.target.Store(target) }

// shut closes the proxy's port: connections to it are refused until open.
// The connections it forwards stay.
func (p *clusterProxy) shut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
}

// open listens on the proxy's port again after shut.
func (p *clusterProxy) open(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: listening on %s again: %v", p.addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil || p.ln != nil {
		_ = ln.Close()
		t.Fatal("proxy: open after close, or while open")
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve(ln)
}

func (p *clusterProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.pipe(c)
		}()
	}
}

func (p *clusterProxy) pipe(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target.Load().(string), 2*time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	if !p.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// track registers the two ends, or closes them when the proxy is closed.
func (p *clusterProxy) track(c, up net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		_ = c.Close()
		_ = up.Close()
		return false
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	return true
}

func (p *clusterProxy) close() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// examples/nginx/nginx.conf behind which TestNginxCluster runs two nodes.
// Clients of every transport connect through it; each gets its own address
// in X-Forwarded-For, which nginx trusts from 127.0.0.1 (the example's
// set_real_ip_from lines, for nginx behind another balancer): all loopback
// clients share 127.0.0, so ip_hash alone would send them to one node.
func TestNginxCluster(t *testing.T) {
	nginx, err := clusterNginx()
	if err != nil {
		needs(t, "%v", err)
	}
	redisURL, prefix := clusterRedis(t), clusterPrefix(t)
	realBundle := func(c *chat.Config) { c.ClientDir = chat.DefaultConfig().ClientDir }
	nodes := map[string]*testServer{
		"a": clusterStartGo(t, redisURL, prefix, realBundle),
		"b": clusterStartGo(t, redisURL, prefix, realBundle),
	}
	lb := clusterStartNginx(t, nginx, nodes["a"].Addr, nodes["b"].Addr)

	// The page and the client bundle, through nginx.
	page, err := httpGet(lb + "/")
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile("public/index.html"); page != string(want) {
		t.Errorf("GET / through nginx: %d bytes, not public/index.html (%d bytes)", len(page), len(want))
	}
	bundle, err := httpGet(lb + "/socket.io/socket.io.js")
	if err != nil {
		t.Fatal(err)
	}
	if direct, _ := httpGet(nodes["a"].URL + "/socket.io/socket.io.js"); bundle != direct || len(bundle) < 1000 {
		t.Errorf("GET /socket.io/socket.io.js through nginx: %d bytes, want the %d bytes a node serves", len(bundle), len(direct))
	}
	// The nodes see the Host the browser sent, so the page's own origin is
	// accepted and another is not.
	for origin, want := range map[string]int{lb: http.StatusOK, "http://evil.example": http.StatusForbidden} {
		req, _ := http.NewRequest("GET", lb+"/socket.io/?EIO=4&transport=polling", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("handshake with Origin %s through nginx: %s, want %d", origin, resp.Status, want)
		}
	}

	var peers []clusterPeer
	onNode := map[string]int{}
	for i, mode := range []sioMode{sioPolling, sioPolling, sioWebSocket, sioWebSocket, sioUpgrade, sioUpgrade} {
		addr := fmt.Sprintf("10.0.%d.1", i+1)
		p := clusterDial(t, "", lb, mode, func(o *sioOptions) {
			o.Header = http.Header{"X-Forwarded-For": {addr}}
		})
		p.node = clusterNodeOf(t, p.c, nodes)
		p.name = fmt.Sprintf("%s-%s-%s", p.node, mode, addr)

		onNode[p.node]++
		peers = append(peers, p)
	}
	t.Logf("clients per node through nginx: %v", onNode)
	if onNode["a"] == 0 || onNode["b"] == 0 {
		t.Fatalf("ip_hash put every client on one node (%v): pick other addresses", onNode)
	}
	matrix := clusterExchange(t, peers, 10, 30*time.Second)
	t.Logf("messages delivered, by node of sender → node of receiver: %v", matrix)
	if matrix["a→b"] == 0 || matrix["b→a"] == 0 {
		t.Errorf("no message crossed nodes: %v", matrix)
	}
	for _, p := range peers {
		// sioOpen waited for the upgrade clients to upgrade through nginx.
		if strings.Contains(p.name, string(sioUpgrade)) && p.c.transportName() != "websocket" {
			t.Errorf("%s: on %s after the exchange, want websocket", p.name, p.c.transportName())
		}
	}

	// The upgrade, step by step: a polling session, then a WebSocket with
	// its sid through nginx (so to the same node), the probe, the switch,
	// and a chat message over the WebSocket.
	clusterRawUpgrade(t, lb, "10.0.9.1")

}

// clusterRawUpgrade opens a polling session at base with the client
// address xff, upgrades it to WebSocket as socket.io-client does, and chats
// over the WebSocket.
func clusterRawUpgrade(t *testing.T, base, xff string) {
	t.Helper()
	poll := base + "/socket.io/?EIO=4&transport=polling"
	do := func(method, url, body string) string {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("X-Forwarded-For", xff)
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %s %s", method, url, resp.Status, b)
		}
		return string(b)
	}
	open := do("GET", poll, "")
	var handshake struct{ Sid string }
	if !strings.HasPrefix(open, "0") || json.Unmarshal([]byte(open[1:]), &handshake) != nil || handshake.Sid == "" {
		t.Fatalf("polling open: %q", open)
	}
	poll += "&sid=" + handshake.Sid
	do("POST", poll, "40")
	if got := do("GET", poll, ""); !strings.HasPrefix(got, "40{") {
		t.Fatalf("socket.io connect over polling: %q", got)
	}

	ws := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket&sid=" + handshake.Sid
	conn, resp, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(ws, http.Header{"X-Forwarded-For": {xff}})
	if err != nil {
		t.Fatalf("WebSocket upgrade through nginx: %v (response %v)", err, resp)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	read := func() string {
		t.Helper()
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("read over the WebSocket: %v", err)
			}
			if string(b) != "2" && string(b) != "6" { // pings and noops
				return string(b)
			}
			if string(b) == "2" {
				_ = conn.WriteMessage(websocket.TextMessage, []byte("3"))
			}
		}
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "3probe" {
		t.Fatalf("probe answer = %q, want 3probe", got)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`42["user-message","upgraded through nginx"]`)); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), `42["message","upgraded through nginx"]`; got != want {
		t.Fatalf("over the upgraded WebSocket: %q, want %q", got, want)
	}
}

// clusterStartNginx runs examples/nginx/nginx.conf in the foreground with
// the two nodes as upstream, a free loopback port, and every path in a
// temporary directory. It returns nginx's URL.
func clusterStartNginx(t *testing.T, nginx, node1, node2 string) string {
	t.Helper()
	example, err := os.ReadFile("examples/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	dir := t.TempDir()
	// Workers may run as another user (nginx started as root): let them
	// reach the temporary files.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		_ = os.Chmod(d, 0o755)
	}
	conf := string(example)
	for _, r := range []struct{ old, new string }{
		{"server 127.0.0.1:9001;", "server " + node1 + ";"},
		{"server 127.0.0.1:9002;", "server " + node2 + ";"},
		{"listen 8080;", "listen " + addr + ";"},
		{"worker_processes auto;", "worker_processes 1;\npid " + filepath.Join(dir, "nginx.pid") + ";"},
		{"# set_real_ip_from 10.0.0.0/8;", "set_real_ip_from 127.0.0.1;"},
		{"# real_ip_header X-Forwarded-For;", "real_ip_header X-Forwarded-For;"},
		{"http {", "http {\n" + clusterNginxPaths(dir)},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("examples/nginx/nginx.conf no longer contains %q", r.old)
		}
		conf = strings.Replace(conf, r.old, r.new, 1)
	}
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	cmd := exec.Command(nginx, "-p", dir, "-c", confPath, "-e", errLog, "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = testlog.Writer(t), testlog.Writer(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if b, _ := os.ReadFile(errLog); len(b) > 0 {
			t.Logf("nginx error log:\n%s", b)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "access.log")); t.Failed() {
			t.Logf("nginx access log:\n%s", b)
		}
	})
	sioEventually(t, 10*time.Second, "nginx listening on "+addr, func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(errLog)
			t.Fatalf("nginx exited:\n%s\nconfig:\n%s", b, conf)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// clusterNginxPaths keeps every file nginx writes in dir.
func clusterNginxPaths(dir string) string {
	var b strings.Builder
	b.WriteString("    log_format upstream '$remote_addr $request $status $upstream_addr';\n")
	b.WriteString("    access_log " + filepath.Join(dir, "access.log") + " upstream;\n")
	for _, name := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s;\n", name, filepath.Join(dir, name))
	}
	return b.String()
}

// clusterNginx finds the nginx binary (Debian installs it in /usr/sbin).
func clusterNginx() (string, error) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed (scripts/setup.sh --test installs it: apt-get install -y nginx)")
}
