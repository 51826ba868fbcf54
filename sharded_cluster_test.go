package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/chat"
	"github.com/chatio/socketio-chat/internal/rediscluster"
)

// shardedCluster starts a 3-primary Redis Cluster of the test's own on
// loopback, stopped at the end; without redis-server the test is skipped
// (fails under CI=true).
func shardedCluster(t *testing.T) *rediscluster.Cluster {
	t.Helper()
	if err := rediscluster.Available(); err != nil {
		needs(t, "no redis-server for a Redis Cluster: %v", err)
	}
	rc, err := rediscluster.Start(t.TempDir(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rc.Stop)
	return rc
}

// The chat on a Redis Cluster with -redis-adapter sharded: two Go nodes
// (-redis naming the cluster's nodes) and a Node.js node on
// createShardedAdapter with node-redis createCluster
// (test/cluster/node-sharded-server.mjs): every client of every node gets
// every message once, in each sender's order; the Go node counts the
// three nodes, fetches every socket, and is ready.
func TestClusterShardedMixedWithNodeJS(t *testing.T) {
	rc := shardedCluster(t)
	prefix := clusterPrefix(t)
	sharded := func(c *chat.Config) { c.RedisAdapter = "sharded" }
	njs := clusterStartNodeJSScript(t, "test/cluster/node-sharded-server.mjs", rc.URLs(), prefix)
	go1, go1URL := clusterStartChat(t, rc.URLs(), prefix, sharded)
	go2 := clusterStartGo(t, rc.URLs(), prefix, sharded)
	peers := []clusterPeer{
		clusterDial(t, "go1", go1URL, sioWebSocket, nil),
		clusterDial(t, "go2", go2.URL, sioUpgrade, nil),
		clusterDial(t, "node", njs.URL, sioWebSocket, nil),
		clusterDial(t, "node", njs.URL, sioPolling, nil),
	}
	const each = 10
	matrix := clusterExchange(t, peers, each, 30*time.Second)
	t.Logf("messages delivered, by node of sender → node of receiver: %v", matrix)
	clients := map[string]int{"go1": 1, "go2": 1, "node": 2}
	for from, nFrom := range clients {
		for to, nTo := range clients {
			if got, want := matrix[from+"→"+to], nFrom*each*nTo; got != want {
				t.Errorf("%s→%s: %d messages, want %d", from, to, got, want)
			}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ns1 := go1.IO().Sockets()
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
	if err := go1.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// The default pub/sub adapter on a Redis Cluster (-redis naming its
// nodes), next to a Node.js node on createAdapter with node-redis
// createCluster: classic pub/sub reaches every node of the cluster, so
// every client of every node gets every message once, and the server
// count sums the subscribers of every cluster node. The Go nodes' messages
// arrive in order everywhere (they publish through one cluster node; with
// go-redis's default routing, a random node per batch, they did not);
// the Node node's may not: node-redis sends each PUBLISH to a random node.
func TestClusterPubSubOnRedisClusterWithNodeJS(t *testing.T) {
	rc := shardedCluster(t)
	prefix := clusterPrefix(t)
	njs := clusterStartNodeJS(t, rc.URLs(), prefix)
	go1, go1URL := clusterStartChat(t, rc.URLs(), prefix)
	go2 := clusterStartGo(t, rc.URLs(), prefix)
	peers := []clusterPeer{
		clusterDial(t, "go1", go1URL, sioWebSocket, nil),
		clusterDial(t, "go2", go2.URL, sioPolling, nil),
		clusterDial(t, "node", njs.URL, sioWebSocket, nil),
	}
	peers[2].name += clusterUnordered
	const each = 10
	matrix := clusterExchange(t, peers, each, 30*time.Second)
	t.Logf("messages delivered, by node of sender → node of receiver: %v", matrix)
	for _, from := range []string{"go1", "go2", "node"} {
		for _, to := range []string{"go1", "go2", "node"} {
			if got := matrix[from+"→"+to]; got != each {
				t.Errorf("%s→%s: %d messages, want %d", from, to, got, each)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := go1.IO().Sockets().Adapter().ServerCount(ctx); err != nil || got != 3 {
		t.Errorf("ServerCount = %d, %v; want 3", got, err)
	}
	if err := go1.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}
