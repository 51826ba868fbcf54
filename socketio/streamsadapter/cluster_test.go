package streamsadapter

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
	"github.com/redis/go-redis/v9"
)

// TestMain stops the Redis Cluster the tests share (rediscluster.Shared
// starts it at the first test that needs it).
func TestMain(m *testing.M) {
	code := m.Run()
	rediscluster.StopShared()
	os.Exit(code)
}

// The publisher on a Redis Cluster: its writes go to keys on every primary
// (four streams, session keys) and to a pub/sub channel, interleaved in
// one outbox. Every stream gets its entries once, in order; every session
// key is set; the channel's messages reach a subscriber in order (a
// cluster pipeline sends each PUBLISH, keyless to go-redis, to a random
// node, and messages through different nodes overtake each other: the
// publisher sends them through the primary of the channel's slot).
func TestOutboxOnRedisCluster(t *testing.T) {
	rc := rediscluster.Shared(t)
	name := testName()
	c, err := New(Options{URL: rc.URLs(), StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, ok := c.client.(*redis.ClusterClient); !ok {
		t.Fatalf("client %T, want a cluster client for %s", c.client, rc.URLs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	check := c.client
	channel := name + "#/#"
	sub := check.Subscribe(ctx, channel)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	streams := []string{name + "-0", name + "-1", name + "-2", name + "-3"}
	nodes := map[string]bool{}
	for _, s := range streams {
		m, err := check.(*redis.ClusterClient).MasterForKey(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		nodes[m.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Logf("the streams are on %d primaries only", len(nodes))
	}
	const n = 600
	for i := range n {
		it := item{kind: kindXAdd, stream: streams[i%len(streams)], uid: "u", nsp: "/", typ: 3, data: strconv.Itoa(i)}
		switch i % 3 {
		case 1:
			it = item{kind: kindSet, key: name + ":session:" + strconv.Itoa(i), value: strconv.Itoa(i), ttl: time.Minute}
		case 2:
			it = item{kind: kindPublish, key: channel, payload: []byte(strconv.Itoa(i))}
		}
		if !c.out.add(it) {
			t.Fatal("outbox full")
		}
	}
	var prev = -1
	for got := 0; got < n/3; got++ {
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", got, err)
		}
		i, _ := strconv.Atoi(msg.Payload)
		if i <= prev {
			t.Fatalf("message %d after %d: out of order", i, prev)
		}
		prev = i
	}
	select {
	case <-c.out.emptied():
	case <-ctx.Done():
		t.Fatal("the outbox did not empty")
	}
	for si, s := range streams {
		entries, err := check.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var want, got []string
		for i := 0; i < n; i++ {
			if i%3 == 0 && i%len(streams) == si {
				want = append(want, strconv.Itoa(i))
			}
		}
		for _, e := range entries {
			got = append(got, e.Values["data"].(string))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("stream %s: %v, want %v", s, got, want)
		}
	}
	for i := 1; i < n; i += 3 {
		if v, err := check.Get(ctx, name+":session:"+strconv.Itoa(i)).Result(); err != nil || v != strconv.Itoa(i) {
			t.Fatalf("session %d: %q %v", i, v, err)
		}
	}
	if st := c.Stats(); st.Published != n || st.Dropped != 0 {
		t.Errorf("Stats: %+v, want %d published, none dropped", st, n)
	}
}
