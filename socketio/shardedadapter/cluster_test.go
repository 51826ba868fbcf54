package shardedadapter

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/rediscluster"
	"github.com/chatio/socketio-chat/internal/redisconn"
	"github.com/chatio/socketio-chat/socketio"
)

// goSetup is the test nodes' application: "join" joins a room, the
// server-side event "ping" answers {pong, node}.
func goSetup(name string) func(*socketio.Server) {
	return func(srv *socketio.Server) {
		srv.OnConnection(func(s *socketio.Socket) {
			s.On("user-message", func(ev *socketio.Event) {
				_ = srv.Of("/").Emit("message", json.RawMessage(ev.Arg(0).JSON))
			})
			s.On("join", func(ev *socketio.Event) {
				var room string
				_ = json.Unmarshal(ev.Arg(0).JSON, &room)
				s.Join(room)
				_ = ev.Ack("joined")
			})
		})
		srv.Of("/").OnServerSideEmit("ping", func(ev *socketio.Event) {
			_ = ev.Ack(map[string]any{"pong": json.RawMessage(ev.Arg(0).JSON), "node": name})
		})
	}
}

// Two Go nodes on a 3-primary Redis Cluster: broadcasts to everyone and to
// a room (its own sharded channel, subscribed while the room has a local
// member), fetchSockets, server-side events with acks, and the server
// count (PUBSUB SHARDNUMSUB summed over the shards).
func TestGoNodesOnRedisCluster(t *testing.T) {
	rc := rediscluster.Shared(t)
	prefix := testPrefix()
	n1 := startNode(t, rc.URLs(), prefix, goSetup("go1"))
	n2 := startNode(t, rc.URLs(), prefix, goSetup("go2"))
	nsp1, nsp2 := n1.io.Of("/"), n2.io.Of("/")
	waitSubscribers(t, n1.adapter, prefix+"#/#", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if n, err := nsp1.Adapter().ServerCount(ctx); err != nil || n != 2 {
		t.Fatalf("ServerCount = %d, %v; want 2", n, err)
	}

	a, b := dial(t, n1.url), dial(t, n2.url)
	if got := b.ack("join", 1, `"room1"`); got != `["joined"]` {
		t.Fatalf("join: %s", got)
	}
	waitSubscribers(t, n1.adapter, prefix+"#/#room1#", 1)

	if err := nsp1.Emit("message", "to all"); err != nil {
		t.Fatal(err)
	}
	a.expect(`2["message","to all"]`, 10*time.Second)
	b.expect(`2["message","to all"]`, 10*time.Second)
	if err := nsp1.To("room1").Emit("message", "to room1"); err != nil {
		t.Fatal(err)
	}
	b.expect(`2["message","to room1"]`, 10*time.Second)
	if err := nsp2.To(a.sid).Emit("message", "to a"); err != nil { // a socket id: the main channel
		t.Fatal(err)
	}
	a.expect(`2["message","to a"]`, 10*time.Second)

	sockets, err := nsp1.FetchSockets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sockets {
		ids = append(ids, s.ID)
		if s.ID == b.sid && !slices.Contains(s.Rooms, "room1") {
			t.Errorf("b's rooms: %v", s.Rooms)
		}
	}
	slices.Sort(ids)
	want := []string{a.sid, b.sid}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("FetchSockets: %v, want %v", ids, want)
	}

	got := make(chan string, 1)
	if err := nsp1.Adapter().ServerSideEmit("ping", []socketio.Arg{{JSON: json.RawMessage("7")}}, func(args []socketio.Arg, err error) {
		var parts []string
		for _, a := range args {
			parts = append(parts, string(a.JSON))
		}
		if err != nil {
			parts = append(parts, err.Error())
		}
		got <- strings.Join(parts, " ")
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != `{"node":"go2","pong":7}` {
			t.Fatalf("server-side emit answers: %s", s)
		}
	case <-ctx.Done():
		t.Fatal("no answer to the server-side event")
	}

	// b leaves room1 (disconnects): n2 unsubscribes from its channel.
	_ = b.conn.Close()
	waitFor(t, "room1's channel unsubscribed", 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := numSub(ctx, n1.adapter, prefix+"#/#room1#")
		return err == nil && n == 0
	})
}

func numSub(ctx context.Context, ad *Adapter, channel string) (int64, error) {
	return redisconn.NumSub(ctx, ad.client, channel, true)
}
