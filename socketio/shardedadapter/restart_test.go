package shardedadapter

import (
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
)

// The whole Redis Cluster restarts: the nodes say they are down (Up
// false, so /readyz fails), a broadcast made meanwhile is dropped and
// counted, and once the cluster is back every node subscribes again on the
// shard of each channel, by itself: broadcasts, to everyone and to a room,
// cross nodes again. (go-redis's own reconnection resubscribes sharded
// channels on a random node of a cluster, which answers MOVED; the
// adapter replaces failed connections itself.)
func TestRedisClusterRestart(t *testing.T) {
	if err := rediscluster.Available(); err != nil {
		rediscluster.Shared(t) // skips, or fails under CI=true
	}
	rc, err := rediscluster.Start(t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Stop)
	prefix := testPrefix()
	n1 := startNode(t, rc.URLs(), prefix, goSetup("go1"))
	n2 := startNode(t, rc.URLs(), prefix, goSetup("go2"))
	waitSubscribers(t, n1.adapter, prefix+"#/#", 2)
	a, b := dial(t, n1.url), dial(t, n2.url)
	if got := b.ack("join", 1, `"room1"`); got != `["joined"]` {
		t.Fatalf("join: %s", got)
	}
	waitSubscribers(t, n1.adapter, prefix+"#/#room1#", 1)
	nsp1 := n1.io.Of("/")
	if err := nsp1.Emit("message", "before"); err != nil {
		t.Fatal(err)
	}
	b.expect(`2["message","before"]`, 10*time.Second)
	if !n1.adapter.Up() || !n2.adapter.Up() {
		t.Fatal("nodes not up before the restart")
	}

	rc.Stop()
	waitFor(t, "both nodes down", 10*time.Second, func() bool { return !n1.adapter.Up() && !n2.adapter.Up() })
	dropped := n1.adapter.Stats().Dropped
	if err := nsp1.Emit("message", "during"); err != nil {
		t.Fatal(err)
	}
	a.expect(`2["message","during"]`, 10*time.Second) // the local clients still get it
	waitFor(t, "the broadcast dropped and counted", 10*time.Second, func() bool { return n1.adapter.Stats().Dropped > dropped })

	if err := rc.Restart(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both nodes up again", 20*time.Second, func() bool { return n1.adapter.Up() && n2.adapter.Up() })
	waitSubscribers(t, n1.adapter, prefix+"#/#", 2)
	waitSubscribers(t, n1.adapter, prefix+"#/#room1#", 1)
	if err := nsp1.Emit("message", "after"); err != nil {
		t.Fatal(err)
	}
	b.expect(`2["message","after"]`, 10*time.Second)
	if err := nsp1.To("room1").Emit("message", "room after"); err != nil {
		t.Fatal(err)
	}
	b.expect(`2["message","room after"]`, 10*time.Second)
	if n := n2.adapter.Stats().Reconnects; n == 0 {
		t.Errorf("n2 counted no reconnection")
	}
}
