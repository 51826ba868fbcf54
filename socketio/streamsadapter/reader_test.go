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
	a := &nsAdapter{name: "/", ctx: ctx, lane: lane{space: make(chan struct{}, 1)}}
	q := &restore{a: a, st: &socketio.SessionState{SID: "s", Rooms: []string{"s", "x"}},
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

// fakeLocal is a LocalNamespace whose Deliver is the test's; its other
// methods are not called.
type fakeLocal struct {
	socketio.LocalNamespace
	deliver func(p *socketio.BroadcastPacket)
}

func (f fakeLocal) Deliver(p *socketio.BroadcastPacket) { f.deliver(p) }

// TestLanesNamespacesInParallel: namespaces that share a stream are
// delivered on lanes of their own. While /a's delivery is blocked (as by a
// long fan-out), /b's later entries are delivered; then /a's, each
// namespace's in the stream's order.
func TestLanesNamespacesInParallel(t *testing.T) {
	testRedis(t)
	name := testName()
	c, err := New(Options{URL: "redis://" + testRedisAddr, StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	release := make(chan struct{})
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	got := map[string]chan string{"/a": make(chan string, 8), "/b": make(chan string, 8)}
	for nsp, ch := range got {
		a := &nsAdapter{c: c, name: nsp, uid: "me", done: make(chan struct{}), lane: lane{space: make(chan struct{}, 1)},
			local: fakeLocal{deliver: func(p *socketio.BroadcastPacket) {
				if nsp == "/a" {
					<-release
				}
				var v string
				_ = p.Args[0].Decode(&v)
				ch <- v
			}}}
		a.ctx, a.cancel = context.WithCancel(context.Background())
		close(a.done) // no goroutine of its own to wait for
		c.mu.Lock()
		c.nsps[nsp] = a
		c.mu.Unlock()
	}
	entry := func(id, nsp, v string) redis.XMessage {
		return redis.XMessage{ID: id, Values: map[string]any{"uid": "other", "nsp": nsp, "type": "3",
			"data": `{"packet":{"type":2,"data":["m","` + v + `"]},"opts":{"rooms":[],"except":[],"flags":{}}}`}}
	}
	r := newReader(c, name) // its dispatcher only: the test feeds it
	go r.dispatch()
	start := entryID{1, 0}
	r.batches <- batch{start: &start}
	r.batches <- batch{entries: []redis.XMessage{
		entry("2-0", "/a", "a1"), entry("2-1", "/b", "b1"), entry("2-2", "/a", "a2"), entry("2-3", "/b", "b2"),
	}}
	r.batches <- batch{entries: []redis.XMessage{entry("3-0", "/b", "b3")}}
	next := func(nsp string) string {
		t.Helper()
		select {
		case v := <-got[nsp]:
			return v
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing delivered within 5s", nsp)
			return ""
		}
	}
	for _, want := range []string{"b1", "b2", "b3"} {
		if v := next("/b"); v != want {
			t.Fatalf("/b got %q, want %q", v, want)
		}
	}
	released = true
	close(release)
	for _, want := range []string{"a1", "a2"} {
		if v := next("/a"); v != want {
			t.Fatalf("/a got %q, want %q", v, want)
		}
	}
}
