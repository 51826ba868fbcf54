package streamsadapter

import (
	"context"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
	"github.com/redis/go-redis/v9"
)

// TestRestoreWaitsForTheOffset: a client comes to a node that has not yet
// delivered the entry of its offset (it reads the stream behind the node
// the client left). The recovery waits until the node has, then gets
// exactly the entries after the offset up to the last delivered one: the
// later ones reach the socket live, the earlier ones it had.
func TestRestoreWaitsForTheOffset(t *testing.T) {
	rc := testRedis(t)
	name := testName()
	c, err := New(Options{URL: "redis://" + testRedisAddr, StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	add := func(room string) string {
		id, err := rc.XAdd(ctx, &redis.XAddArgs{Stream: name, ID: "*", Values: []string{
			"uid", "other", "nsp", "/", "type", "3",
			"data", `{"packet":{"type":2,"data":["m","` + room + `"]},"opts":{"rooms":["` + room + `"],"except":[],"flags":{}}}`,
		}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	e0 := add("x")
	e1, e2, e3, e4 := add("x"), add("x"), add("x"), add("y")
	_, _ = e1, e4 // e4 is not delivered: it would come live
	entries, err := rc.XRange(ctx, name, "-", "+").Result()
	if err != nil || len(entries) != 5 {
		t.Fatalf("%d entries: %v", len(entries), err)
	}

	r := newReader(c, name) // its dispatcher only: the test feeds it
	go r.dispatch()
	joined := make(chan []socketio.MissedPacket, 1)
	offset, _ := parseID(e2)
	q := &restore{a: &nsAdapter{name: "/"}, st: &socketio.SessionState{SID: "s", Rooms: []string{"s", "x"}},
		offset: offset, ctx: ctx, done: make(chan error, 1),
		join: func(m []socketio.MissedPacket) bool { joined <- m; return true }}
	r.restores <- q // before the reader knows where it is: kept
	start, _ := parseID(e0)
	r.batches <- batch{start: &start}
	r.batches <- batch{entries: entries[1:2]} // e1: still behind the offset
	r.batches <- batch{entries: entries[2:4]} // e2 (the offset), e3
	select {
	case err := <-q.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the recovery was not served")
	}
	missed := <-joined
	var got []string
	for _, m := range missed {
		got = append(got, m.Offset)
	}
	// Served once e2 and e3 were delivered (one batch): e3 only. Served
	// before the node delivered e2 (at its start, or after e1), it would
	// have found nothing after e2, and the socket, a member from then on,
	// would have got e2 a second time, live.
	if len(got) != 1 || got[0] != e3 {
		t.Errorf("missed %q; want [%s]", got, e3)
	}
}
