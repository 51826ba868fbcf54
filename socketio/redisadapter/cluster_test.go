package redisadapter

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// twoNodes starts two servers on one Redis prefix, each with setup and
// cluster options changed by mods, and waits until each hears the other.
func twoNodes(t *testing.T, setup func(*socketio.Server), mods ...func(*Options)) (a, b *testNode) {
	t.Helper()
	rc := testRedis(t)
	prefix := testPrefix(t)
	a = startNode(t, newTestCluster(t, prefix, mods...), setup)
	b = startNode(t, newTestCluster(t, prefix, mods...), setup)
	waitFor(t, "two nodes", 5*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(t.Context(), prefix+"-request#/#").Result()
		return n[prefix+"-request#/#"] == 2
	})
	return a, b
}

// relay makes every socket broadcast the "chat" events it receives to the
// others, as the chat does: the client's arguments are handed on as they
// came.
func relay(srv *socketio.Server) {
	srv.OnConnection(func(s *socketio.Socket) {
		s.Join("room1")
		s.On("chat", func(ev *socketio.Event) {
			args := make([]any, len(ev.Args))
			for i, a := range ev.Args {
				args[i] = a
			}
			_ = s.Broadcast().Emit("chat", args...)
		})
	})
}

// A message that goes from a client through one node, Redis and another
// node reaches that node's clients byte for byte as the sender wrote it
// (when it wrote JSON as JSON.stringify does), binary attachments
// included; the sender's own node delivers the same bytes.
func TestClusterRoundTripByteForByte(t *testing.T) {
	a, b := twoNodes(t, relay)
	sender, local, remote := dial(t, a, "", ""), dial(t, a, "", ""), dial(t, b, "", "")
	tests := []struct {
		name string
		send packet
	}{
		{"lone surrogate", packet{text: `2["chat","\ud800x"]`}},
		{"surrogates", packet{text: `2["chat",{"\udfff":["\ud83d","😀","\ud83d\ud83d"]},"\udc00"]`}},
		{"key order", packet{text: `2["chat",{"1":0,"7":1,"z":3,"a":4,"01":5,"":7,"-1":8,"__proto__":9}]`}},
		{"numbers", packet{text: `2["chat",[0,-1,1.5,0.1,1e-7,5e-7,1e+21,-1e+21,1.7976931348623157e+308,5e-324,9007199254740992,18446744073709552000]]`}},
		{"escapes", packet{text: `2["chat","\u0000\u001f\"\\` + "\u2028\x7f" + `é"]`}},
		{"literals", packet{text: `2["chat",true,false,null,"",{},[]]`}},
		{"nested binary", packet{text: `53-["chat",{"a":[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]},{"_placeholder":true,"num":2}]`,
			bins: [][]byte{{1, 2}, {}, []byte(strings.Repeat("z", 70000))}}},
		{"placeholder text", packet{text: `2["chat",{"_placeholder":true,"num":0}]`}},
		{"long", packet{text: `2["chat","` + strings.Repeat("y", 100000) + `"]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sender.sendText(tt.send.text)
			for _, bin := range tt.send.bins {
				sender.sendBinary(bin)
			}
			checkPacket(t, local.nextEvent("chat", 5*time.Second), tt.send)
			checkPacket(t, remote.nextEvent("chat", 5*time.Second), tt.send)
		})
	}
}

// Many senders on both nodes: every client sees every message once, and
// each sender's messages in the order it sent them.
func TestClusterManySenders(t *testing.T) {
	a, b := twoNodes(t, relay)
	const senders, each = 4, 50
	var clients []*wsClient
	for i := range senders {
		n := a
		if i%2 == 1 {
			n = b
		}
		clients = append(clients, dial(t, n, "", ""))
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for k := range each {
				c.sendText(eventText("chat", strconv.Itoa(i), strconv.Itoa(k)))
			}
		})
	}
	wg.Wait()
	for i, c := range clients {
		next := make([]int, senders)
		for range (senders - 1) * each {
			p := c.nextEvent("chat", 10*time.Second)
			var from, k int
			if _, err := parseChat(p.text, &from, &k); err != nil {
				t.Fatal(err)
			}
			if k != next[from] {
				t.Fatalf("client %d: message %d of sender %d, want %d", i, k, from, next[from])
			}
			next[from]++
		}
	}
}

func parseChat(text string, from, k *int) (string, error) {
	var v []json.RawMessage
	if err := json.Unmarshal([]byte(text[1:]), &v); err != nil {
		return "", err
	}
	if err := json.Unmarshal(v[1], from); err != nil {
		return "", err
	}
	return "", json.Unmarshal(v[2], k)
}

// Server-side events reach the other nodes, and their acknowledgements
// come back; a node that does not answer makes the ack fail after the
// requests timeout with the answers that came.
func TestClusterServerSideEmit(t *testing.T) {
	var mu sync.Mutex
	var got []string
	setup := func(srv *socketio.Server) {
		srv.OnServerSideEmit("ping", func(ev *socketio.Event) { // the Server's shortcut for "/"
			mu.Lock()
			got = append(got, ev.Arg(0).String())
			mu.Unlock()
			_ = ev.Ack("pong", 2)
		})
		srv.Sockets().OnServerSideEmit("silent", func(*socketio.Event) {})
	}
	a, _ := twoNodes(t, setup, func(o *Options) { o.RequestsTimeout = time.Second })

	if err := a.io.ServerSideEmit("ping", map[string]any{"bin": []byte{1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server-side event", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	if got[0] != `{"bin":{"type":"Buffer","data":[1]}}` {
		t.Errorf("b got %s", got[0])
	}
	mu.Unlock()

	type result struct {
		args []socketio.Arg
		err  error
	}
	done := make(chan result, 1)
	if err := a.io.Sockets().ServerSideEmit("ping", json.RawMessage(`"\ud800"`), socketio.AckFunc(func(args []socketio.Arg, err error) {
		done <- result{args, err}
	})); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || len(r.args) != 1 || r.args[0].String() != `"pong"` {
			t.Errorf("ack: %v %v", r.args, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ack")
	}
	mu.Lock()
	if got[1] != `"\ud800"` {
		t.Errorf("b got %s", got[1])
	}
	mu.Unlock()

	_ = a.io.Sockets().ServerSideEmit("silent", socketio.AckFunc(func(args []socketio.Arg, err error) {
		done <- result{args, err}
	}))
	select {
	case r := <-done:
		if !errors.Is(r.err, socketio.ErrAckTimeout) || len(r.args) != 0 {
			t.Errorf("ack: %v %v, want a timeout", r.args, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout")
	}
}

// fetchSockets returns the sockets of both nodes, those of the other with
// their handshake (in Node's format on the wire), rooms and data; and a
// remote socket can be acted on.
func TestClusterFetchSockets(t *testing.T) {
	setup := func(srv *socketio.Server) {
		srv.OnConnection(func(s *socketio.Socket) {
			s.Join("room1")
			s.SetData(map[string]any{"name": "ann"})
		})
	}
	a, b := twoNodes(t, setup)
	dial(t, a, "", "")
	cb := dial(t, b, "q=1&q=2", `{"token":"\ud800"}`)
	before := time.Now()

	sockets, err := a.io.Sockets().FetchSockets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sockets) != 2 {
		t.Fatalf("%d sockets, want 2", len(sockets))
	}
	var remote *socketio.RemoteSocket
	for _, s := range sockets {
		if s.ID == cb.sid {
			remote = s
		}
	}
	if remote == nil {
		t.Fatalf("b's socket %s not among %v", cb.sid, sockets)
	}
	h := remote.Handshake
	if !slices.Equal(remote.Rooms, []string{cb.sid, "room1"}) || string(remote.Data.(json.RawMessage)) != `{"name":"ann"}` {
		t.Errorf("rooms %v data %v", remote.Rooms, remote.Data)
	}
	if string(h.Auth) != `{"token":"\ud800"}` || !slices.Equal(h.Query["q"], []string{"1", "2"}) ||
		h.Headers.Get("X-Test") != "yes" || h.Address != "127.0.0.1" || h.Time.After(before) || before.Sub(h.Time) > time.Minute ||
		!strings.Contains(h.URL, "transport=websocket") {
		t.Errorf("handshake %+v", h)
	}
	// The remote socket can be acted on from a.
	if err := remote.Emit("direct", 1); err != nil {
		t.Fatal(err)
	}
	checkPacket(t, cb.nextEvent("direct", 5*time.Second), packet{text: eventText("direct", "1")})
	remote.Join("room2")
	waitFor(t, "the join", 5*time.Second, func() bool {
		s := b.io.Sockets().Socket(cb.sid)
		return s != nil && slices.Contains(s.Rooms(), "room2")
	})
	_ = a.io.To("room2").Emit("in room2", "x")
	checkPacket(t, cb.nextEvent("in room2", 5*time.Second), packet{text: eventText("in room2", `"x"`)})
	remote.Leave("room2")
	waitFor(t, "the leave", 5*time.Second, func() bool {
		return !slices.Contains(b.io.Sockets().Socket(cb.sid).Rooms(), "room2")
	})
	// Only the sockets selected.
	sockets, err = a.io.In("room1").Except(cb.sid).FetchSockets(context.Background())
	if err != nil || len(sockets) != 1 || sockets[0].ID == cb.sid {
		t.Errorf("except: %v %v", sockets, err)
	}
	remote.Disconnect(false)
	p := cb.next(5 * time.Second)
	for strings.HasPrefix(p.text, "2") {
		p = cb.next(5 * time.Second)
	}
	if p.text != "1" {
		t.Errorf("got %q, want a DISCONNECT", p.text)
	}
}

// A broadcast with acknowledgements collects the answers of the clients of
// both nodes.
func TestClusterBroadcastWithAck(t *testing.T) {
	a, b := twoNodes(t, nil)
	ca, cb := dial(t, a, "", ""), dial(t, b, "", "")
	answer := func(c *wsClient, reply string) {
		go func() {
			p := c.nextEvent("ask", 5*time.Second)
			// 2<id>["ask",...]
			id := p.text[1:strings.IndexByte(p.text, '[')]
			c.sendText("3" + id + "[" + reply + "]")
		}()
	}
	answer(ca, `"from a"`)
	answer(cb, `{"from":"b","bin":"\ud800"}`)
	done := make(chan []string, 1)
	err := a.io.Except().Timeout(5*time.Second).Emit("ask", "q", socketio.AckFunc(func(args []socketio.Arg, err error) {
		var out []string
		for _, a := range args {
			out = append(out, a.String())
		}
		if err != nil {
			out = append(out, err.Error())
		}
		done <- out
	}))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		slices.Sort(got)
		if want := []string{`"from a"`, `{"from":"b","bin":"\ud800"}`}; !slices.Equal(got, want) {
			t.Errorf("acks %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no acks")
	}
}

// socketsJoin, socketsLeave and disconnectSockets reach the other node.
func TestClusterRemoteRoomsAndDisconnect(t *testing.T) {
	a, b := twoNodes(t, nil)
	cb := dial(t, b, "", "")
	a.io.In(cb.sid).SocketsJoin("r2")
	waitFor(t, "the join", 5*time.Second, func() bool {
		return slices.Contains(b.io.Sockets().Socket(cb.sid).Rooms(), "r2")
	})
	_ = a.io.To("r2").Emit("hello", 1)
	checkPacket(t, cb.nextEvent("hello", 5*time.Second), packet{text: eventText("hello", "1")})
	a.io.Sockets().SocketsLeave("r2")
	waitFor(t, "the leave", 5*time.Second, func() bool {
		return !slices.Contains(b.io.Sockets().Socket(cb.sid).Rooms(), "r2")
	})
	a.io.Sockets().DisconnectSockets(false)
	if p := cb.next(5 * time.Second); p.text != "1" {
		t.Errorf("got %q, want a DISCONNECT", p.text)
	}
	waitFor(t, "the disconnection", 5*time.Second, func() bool { return b.io.Sockets().Len() == 0 })
}
