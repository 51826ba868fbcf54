package redisadapter

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
)

// TestMain stops the Redis Cluster that the cluster tests share, if one
// of them started it.
func TestMain(m *testing.M) {
	code := m.Run()
	rediscluster.StopShared()
	os.Exit(code)
}

// The pub/sub adapter on a Redis Cluster, named by the list of its nodes:
// classic PUBLISH reaches the subscribers of every node, so two Go nodes
// subscribed on different nodes of the cluster hear each other, and the
// server count sums NUMSUB over the nodes (each knows only its own
// subscribers).
func TestPubSubOnRedisCluster(t *testing.T) {
	rc := rediscluster.Shared(t)
	prefix := testPrefix(t)
	url := rc.URLs()
	n1 := startNode(t, newTestCluster(t, prefix, func(o *Options) { o.URL = url }), nil)
	n2 := startNode(t, newTestCluster(t, prefix, func(o *Options) { o.URL = url }), nil)
	waitFor(t, "both nodes up", 10*time.Second, func() bool { return n1.cluster.Up() && n2.cluster.Up() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, "two servers counted", 10*time.Second, func() bool {
		n, err := n1.io.Of("/").Adapter().ServerCount(ctx)
		return err == nil && n == 2
	})
	a, b := dial(t, n1, "", ""), dial(t, n2, "", "")
	if err := n1.io.Of("/").Emit("message", "from n1"); err != nil {
		t.Fatal(err)
	}
	if p := b.nextEvent("message", 10*time.Second); p.text != eventText("message", `"from n1"`) {
		t.Fatalf("n2's client got %q", p.text)
	}
	if err := n2.io.Of("/").To(a.sid).Emit("direct", "from n2"); err != nil {
		t.Fatal(err)
	}
	if p := a.nextEvent("direct", 10*time.Second); p.text != eventText("direct", `"from n2"`) {
		t.Fatalf("n1's client got %q", p.text)
	}
	sockets, err := n1.io.Of("/").FetchSockets(ctx)
	if err != nil || len(sockets) != 2 {
		t.Fatalf("FetchSockets: %d sockets, %v", len(sockets), err)
	}
}
