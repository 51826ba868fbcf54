package shardedadapter

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
)

// startNodeServer runs test/cluster/node-sharded-server.mjs (Node's
// createShardedAdapter on node-redis createCluster) and returns its URL.
func startNodeServer(t *testing.T, redisURL, prefix string) string {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../../node_modules/@socket.io/redis-adapter")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or node_modules missing (scripts/setup.sh --test installs them): %v", err)
		}
		t.Skipf("node or node_modules missing: %v", err)
	}
	cmd := exec.Command(bin, "../../test/cluster/node-sharded-server.mjs")
	cmd.Env = append(os.Environ(), "PORT=0", "REDIS_URL="+redisURL, "REDIS_PREFIX="+prefix)
	cmd.Stderr = testlog.Writer(t)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close() // it exits when stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	urls := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`listening on (http://\S+)`)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Log("node:", sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
	}()
	select {
	case u := <-urls:
		return u
	case <-time.After(20 * time.Second):
		t.Fatal("the Node server did not start")
	}
	return ""
}

// A Go node and a Node.js node (createShardedAdapter on createCluster) on
// a 3-primary Redis Cluster: their clients chat both ways, room
// broadcasts go through the rooms' own channels both ways, and
// fetchSockets and server-side events with acks see both nodes from each.
func TestGoAndNodeOnRedisCluster(t *testing.T) {
	testGoAndNode(t, rediscluster.Shared(t).URLs())
}

// The same on a single Redis 7 (node-redis createClient), the test Redis.
func TestGoAndNodeOnOneRedis(t *testing.T) {
	testGoAndNode(t, testSingleRedis(t))
}

func testGoAndNode(t *testing.T, redisURL string) {
	prefix := testPrefix()
	n1 := startNode(t, redisURL, prefix, goSetup("go1"))
	nodeURL := startNodeServer(t, redisURL, prefix)
	waitSubscribers(t, n1.adapter, prefix+"#/#", 2)
	nsp := n1.io.Of("/")

	g, j := dial(t, n1.url), dial(t, nodeURL)

	j.send(`2["user-message","from node"]`)
	g.expect(`2["message","from node"]`, 10*time.Second)
	j.expect(`2["message","from node"]`, 10*time.Second)
	g.send(`2["user-message","from go"]`)
	j.expect(`2["message","from go"]`, 10*time.Second)
	g.expect(`2["message","from go"]`, 10*time.Second)

	if got := j.ack("join", 1, `"room1"`); got != `["joined"]` {
		t.Fatalf("node join: %s", got)
	}
	waitSubscribers(t, n1.adapter, prefix+"#/#room1#", 1)
	if err := nsp.To("room1").Emit("message", "go to room1"); err != nil {
		t.Fatal(err)
	}
	j.expect(`2["message","go to room1"]`, 10*time.Second)

	if got := g.ack("join", 2, `"room2"`); got != `["joined"]` {
		t.Fatalf("go join: %s", got)
	}
	waitSubscribers(t, n1.adapter, prefix+"#/#room2#", 1)
	j.send(`2["to-room","room2","node to room2"]`)
	g.expect(`2["message","node to room2"]`, 10*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sockets, err := nsp.FetchSockets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sockets {
		ids = append(ids, s.ID)
		if s.ID == j.sid && !slices.Contains(s.Rooms, "room1") {
			t.Errorf("the Node socket's rooms: %v", s.Rooms)
		}
	}
	if !slices.Contains(ids, j.sid) || !slices.Contains(ids, g.sid) || len(ids) != 2 {
		t.Fatalf("Go's fetchSockets: %v; want %s and %s", ids, g.sid, j.sid)
	}
	want, _ := json.Marshal([][]string{sorted(g.sid, j.sid)})
	if got := j.ack("fetch", 3); got != string(want) {
		t.Fatalf("Node's fetchSockets: %s, want %s", got, want)
	}

	answers := make(chan string, 1)
	if err := nsp.Adapter().ServerSideEmit("ping", []socketio.Arg{{JSON: json.RawMessage("7")}}, func(args []socketio.Arg, err error) {
		if err != nil || len(args) != 1 {
			answers <- "error"
			return
		}
		answers <- string(args[0].JSON)
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-answers:
		if a != `{"pong":7,"node":"node"}` {
			t.Fatalf("Node's answer to Go's server-side event: %s", a)
		}
	case <-ctx.Done():
		t.Fatal("no answer from Node")
	}
	if got := j.ack("sse", 4, "5"); got != `[{"err":null,"responses":[{"node":"go1","pong":5}]}]` {
		t.Fatalf("Go's answer to Node's server-side event: %s", got)
	}

	// Broadcasts with acks, both ways: each node counts the other's
	// recipients and gets their acks.
	gr, jr := `"from g"`, `"from j"`
	g.askReply.Store(&gr)
	j.askReply.Store(&jr)
	acks := make(chan string, 1)
	if err := nsp.Timeout(5*time.Second).Emit("ask", "q", socketio.AckFunc(func(args []socketio.Arg, err error) {
		var got []string
		for _, a := range args {
			got = append(got, string(a.JSON))
		}
		slices.Sort(got)
		b, _ := json.Marshal(got)
		if err != nil {
			b = append(b, err.Error()...)
		}
		acks <- string(b)
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-acks:
		if want := `["\"from g\"","\"from j\""]`; a != want {
			t.Fatalf("Go's broadcast with acks: %s, want %s", a, want)
		}
	case <-ctx.Done():
		t.Fatal("no acks")
	}
	if got := j.ack("ask-all", 5); got != `[{"err":null,"responses":["from g","from j"]}]` {
		t.Fatalf("Node's broadcast with acks: %s", got)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
