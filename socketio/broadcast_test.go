package socketio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// roomsFixture is three clients of "/": a in r1, b in r1 and r2, c in
// none; sockets by name.
type roomsFixture struct {
	s       *testIO
	clients map[string]*rawClient
	sockets map[string]*Socket
}

func newRoomsFixture(t *testing.T, tr transport) *roomsFixture {
	f := &roomsFixture{clients: map[string]*rawClient{}, sockets: map[string]*Socket{}}
	sockets := make(chan *Socket, 3)
	f.s = startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.On("join", func(e *Event) {
				var rooms []string
				for _, a := range e.Args {
					var r string
					_ = a.Decode(&r)
					rooms = append(rooms, r)
				}
				so.Join(rooms...)
				_ = e.Ack()
			})
			sockets <- so
		})
	})
	for _, name := range []string{"a", "b", "c"} {
		c, _ := connected(t, f.s, tr, "/", "")
		f.clients[name] = c
		f.sockets[name] = recv(t, sockets)
	}
	f.sockets["a"].Join("r1")
	f.sockets["b"].Join("r1", "r2", "r1") // twice: once
	return f
}

// expectRecipients checks who received event (and that nobody else did:
// a marker sent to all after it must be the next packet of the others).
func (f *roomsFixture) expectRecipients(t *testing.T, event string, want ...string) {
	t.Helper()
	marker := "marker " + event
	if err := f.s.Emit(marker); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		c := f.clients[name]
		got, _ := eventArgs(t, c.nextText())
		if slices.Contains(want, name) {
			if got != event {
				t.Errorf("%s: got %q, want %q", name, got, event)
				continue
			}
			got, _ = eventArgs(t, c.nextText())
		}
		if got != marker {
			t.Errorf("%s: got %q, want %q (received what it should not, or twice)", name, got, marker)
		}
	}
}

func TestRooms(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			f := newRoomsFixture(t, tr)
			io, a, c := f.s, f.sockets["a"], f.sockets["c"]
			steps := []struct {
				name string
				emit func(event string) error
				want []string
			}{
				{"io.Emit", func(e string) error { return io.Emit(e) }, []string{"a", "b", "c"}},
				{"To r1", func(e string) error { return io.To("r1").Emit(e) }, []string{"a", "b"}},
				{"In r2", func(e string) error { return io.In("r2").Emit(e) }, []string{"b"}},
				{"To r1 r2 deduplicated", func(e string) error { return io.To("r1", "r2").Emit(e) }, []string{"a", "b"}},
				{"To r1 To r2 deduplicated", func(e string) error { return io.To("r1").To("r2").Emit(e) }, []string{"a", "b"}},
				{"Except r2", func(e string) error { return io.Except("r2").Emit(e) }, []string{"a", "c"}},
				{"To r1 Except r2", func(e string) error { return io.To("r1").Except("r2").Emit(e) }, []string{"a"}},
				{"To an id: its own room", func(e string) error { return io.To(c.ID()).Emit(e) }, []string{"c"}},
				{"To an id and a room", func(e string) error { return io.To(c.ID(), "r2").Emit(e) }, []string{"b", "c"}},
				{"Except an id", func(e string) error { return io.Except(a.ID()).Emit(e) }, []string{"b", "c"}},
				{"To an empty room", func(e string) error { return io.To("nobody").Emit(e) }, nil},
				{"socket.Broadcast", func(e string) error { return a.Broadcast().Emit(e) }, []string{"b", "c"}},
				{"socket.To r1: not itself", func(e string) error { return a.To("r1").Emit(e) }, []string{"b"}},
				{"socket.To its own room", func(e string) error { return a.To(a.ID()).Emit(e) }, nil},
				{"socket.Except r2", func(e string) error { return a.Except("r2").Emit(e) }, []string{"c"}},
				{"Local", func(e string) error { return io.Local().To("r1").Emit(e) }, []string{"a", "b"}},
				{"Namespace.Emit", func(e string) error { return io.Of("/").Emit(e) }, []string{"a", "b", "c"}},
			}
			for i, st := range steps {
				event := fmt.Sprintf("step %d", i)
				if err := st.emit(event); err != nil {
					t.Fatal(err)
				}
				t.Run(st.name, func(t *testing.T) { f.expectRecipients(t, event, st.want...) })
			}
			// Leave; the own room stays.
			b := f.sockets["b"]
			b.Leave("r1", b.ID(), "never joined")
			if got := b.Rooms(); fmt.Sprint(got) != fmt.Sprintf("[%s r2]", b.ID()) {
				t.Errorf("Rooms() after Leave = %q", got)
			}
			_ = io.To("r1").Emit("after leave")
			f.expectRecipients(t, "after leave", "a")
			_ = io.To(b.ID()).Emit("own room")
			f.expectRecipients(t, "own room", "b")
			rooms := io.Sockets().Rooms()
			slices.Sort(rooms)
			want := []string{a.ID(), b.ID(), c.ID(), "r1", "r2"}
			slices.Sort(want)
			if fmt.Sprint(rooms) != fmt.Sprint(want) {
				t.Errorf("Namespace.Rooms() = %q, want %q", rooms, want)
			}
		})
	}
}

// TestJoinFromHandlerIsOrdered: a join in an event handler, acknowledged,
// is in force for every broadcast that follows the ack.
func TestJoinFromHandlerIsOrdered(t *testing.T) {
	f := newRoomsFixture(t, wsTransport)
	c := f.clients["c"]
	c.send(`21["join","r9"]`)
	c.expect("31[]")
	_ = f.s.To("r9").Emit("in r9")
	f.expectRecipients(t, "in r9", "c")
}

// TestBroadcastOrder: many goroutines broadcast at once; every recipient,
// over WebSocket or polling, sees the same sequence, each sender's in its
// order.
func TestBroadcastOrder(t *testing.T) {
	const senders, perSender = 6, 100
	s := startIO(t, Options{}, func(io *Server) {
		io.OnConnection(func(so *Socket) {
			so.On("say", func(e *Event) { _ = io.Emit("said", e.Args[0]) })
		})
	})
	var clients []*rawClient
	for i := range 8 {
		tr := transports[i%2]
		c, _ := connected(t, s, tr, "/", "")
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			for j := range perSender {
				var err error
				if i%2 == 0 {
					err = s.Emit("said", fmt.Sprintf("%d:%d", i, j))
				} else {
					err = s.To("nobody").Except("x").Local().Emit("lost") // interleaved no-ops
					if err == nil {
						err = s.Sockets().Emit("said", fmt.Sprintf("%d:%d", i, j))
					}
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// And clients' events broadcast from their handlers, concurrently.
	for k, c := range clients[:2] {
		wg.Go(func() {
			for j := range perSender {
				if err := c.writeEngine(fmt.Sprintf(`42["say","c%d:%d"]`, k, j)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := senders*perSender + 2*perSender
	var first []string
	for r, c := range clients {
		seq := make([]string, 0, total)
		next := map[string]int{}
		for range total {
			name, args := eventArgs(t, c.nextText())
			var v string
			if name != "said" || len(args) != 1 || json.Unmarshal(args[0], &v) != nil {
				t.Fatalf("client %d: %s %s", r, name, args)
			}
			from, n, _ := strings.Cut(v, ":")
			if want := fmt.Sprint(next[from]); n != want {
				t.Fatalf("client %d: %q after %d of %s: lost, duplicated or reordered", r, v, next[from], from)
			}
			next[from]++
			seq = append(seq, v)
		}
		if r == 0 {
			first = seq
			continue
		}
		if i := firstDifference(first, seq); i >= 0 {
			t.Errorf("client %d (%s) differs from client 0 at %d: %q, client 0 %q", r, c.transport, i, seq[i], first[i])
		}
	}
}

func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func TestFetchJoinLeaveDisconnectSockets(t *testing.T) {
	f := newRoomsFixture(t, wsTransport)
	io := f.s
	f.sockets["a"].SetData("data of a")
	ctx := context.Background()

	all, err := io.Sockets().FetchSockets(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("FetchSockets = %d, %v", len(all), err)
	}
	if main, err := io.FetchSockets(ctx); err != nil || len(main) != 3 {
		t.Fatalf("Server.FetchSockets = %d, %v", len(main), err)
	}
	byID := map[string]*RemoteSocket{}
	for _, r := range all {
		byID[r.ID] = r
	}
	a := byID[f.sockets["a"].ID()]
	if a == nil || a.Data != "data of a" || fmt.Sprint(a.Rooms) != fmt.Sprintf("[%s r1]", a.ID) || a.Handshake.Query.Get("EIO") != "4" {
		t.Fatalf("RemoteSocket of a = %+v", a)
	}
	inR1, _ := io.In("r1").FetchSockets(ctx)
	if len(inR1) != 2 {
		t.Errorf("In(r1).FetchSockets = %d sockets", len(inR1))
	}
	// RemoteSocket methods act on the socket.
	_ = a.Emit("to a")
	f.expectRecipients(t, "to a", "a")
	a.Join("ra")
	_ = io.To("ra").Emit("in ra")
	f.expectRecipients(t, "in ra", "a")
	a.Leave("ra")

	// SocketsJoin and SocketsLeave.
	io.In("r2").SocketsJoin("r3", "r4")
	io.Except("r1").SocketsJoin("r3")
	_ = io.To("r3").Emit("in r3")
	f.expectRecipients(t, "in r3", "b", "c")
	io.Sockets().SocketsLeave("r3")
	_ = io.To("r3").Emit("r3 left")
	f.expectRecipients(t, "r3 left")
	_ = io.To("r4").Emit("still r4")
	f.expectRecipients(t, "still r4", "b")
	// The Server's shortcuts act on the main namespace.
	io.SocketsJoin("r5")
	_ = io.To("r5").Emit("all in r5")
	f.expectRecipients(t, "all in r5", "a", "b", "c")
	io.SocketsLeave("r5")
	_ = io.To("r5").Emit("none in r5")
	f.expectRecipients(t, "none in r5")

	// DisconnectSockets: the clients get DISCONNECT; with close, the
	// session ends too.
	io.In("r2").DisconnectSockets(false)
	f.clients["b"].expect("1")
	io.To(f.sockets["c"].ID()).DisconnectSockets(true)
	f.clients["c"].expect("1")
	if code, _ := f.clients["c"].waitClosed(); code != websocket.CloseNormalClosure {
		t.Errorf("close code %d", code)
	}
	waitFor(t, "two sockets gone", func() bool { return io.Sockets().Len() == 1 })
	if left, _ := io.Sockets().FetchSockets(ctx); len(left) != 1 || left[0].ID != a.ID {
		t.Errorf("FetchSockets after the disconnects: %d", len(left))
	}
	a.Disconnect(false)
	f.clients["a"].expect("1")
}

// TestBroadcastWithAck: Timeout + AckFunc collects one response per
// recipient, or ErrAckTimeout with those that came.
func TestBroadcastWithAck(t *testing.T) {
	f := newRoomsFixture(t, wsTransport)
	io := f.s
	type result struct {
		args []string
		err  error
	}
	results := make(chan result, 2)
	onAcks := AckFunc(func(args []Arg, err error) {
		var s []string
		for _, a := range args {
			s = append(s, string(a.JSON))
		}
		slices.Sort(s)
		results <- result{s, err}
	})
	answer := func(name, reply string) {
		c := f.clients[name]
		p := c.nextText()
		var id int
		if _, err := fmt.Sscanf(p, `2%d["poll"`, &id); err != nil {
			t.Fatalf("%s got %q: %v", name, p, err)
		}
		if reply != "" {
			c.send(fmt.Sprintf(`3%d[%s,"ignored second arg"]`, id, reply))
		}
	}
	if err := io.To("r1").Timeout(waitTimeout).Emit("poll", "q?", onAcks); err != nil {
		t.Fatal(err)
	}
	answer("a", `"yes"`)
	answer("b", `{"v":1}`)
	r := recv(t, results)
	if r.err != nil || fmt.Sprint(r.args) != `["yes" {"v":1}]` {
		t.Errorf("acks %q, %v", r.args, r.err)
	}

	start := time.Now()
	if err := io.Except().Timeout(300*time.Millisecond).Emit("poll", onAcks); err != nil {
		t.Fatal(err)
	}
	answer("a", `1`)
	answer("b", "") // b does not answer
	answer("c", `3`)
	r = recv(t, results)
	if !errors.Is(r.err, ErrAckTimeout) || fmt.Sprint(r.args) != "[1 3]" {
		t.Errorf("acks %q, %v; want 1 and 3 with ErrAckTimeout", r.args, r.err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("timed out after %v", d)
	}
	// Nobody to ask: the AckFunc gets no responses, no error.
	// The Server's Timeout: every socket of the main namespace.
	if err := io.Timeout(waitTimeout).Emit("poll", onAcks); err != nil {
		t.Fatal(err)
	}
	answer("a", `"a"`)
	answer("b", `"b"`)
	answer("c", `"c"`)
	if r := recv(t, results); r.err != nil || fmt.Sprint(r.args) != `["a" "b" "c"]` {
		t.Errorf("acks of Server.Timeout: %q, %v", r.args, r.err)
	}
	if err := io.To("nobody").Timeout(waitTimeout).Emit("poll", onAcks); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, results); r.err != nil || len(r.args) != 0 {
		t.Errorf("acks of nobody: %q, %v", r.args, r.err)
	}
	if err := io.Emit("poll", onAcks); err == nil {
		t.Error("a broadcast with an ack and no Timeout was accepted")
	}
}

// TestVolatile: a volatile broadcast skips a client whose queue is not
// empty (it is not ready for more).
func TestVolatile(t *testing.T) {
	s := startIO(t, Options{}, nil)
	m := manualPollOpen(t, s)
	m.post("40")
	if p := m.get(); len(p) != 1 || !strings.HasPrefix(p[0], "40{") {
		t.Fatalf("CONNECT answer %q", p)
	}
	ws, _ := connected(t, s, wsTransport, "/", "")
	// The polling client does not poll now: what is sent waits.
	// The WebSocket client reads each before the next is sent: its queue
	// is empty each time.
	_ = s.Emit("kept", 1)
	ws.expect(`2["kept",1]`)
	_ = s.Except().Volatile().Emit("volatile", 2)
	ws.expect(`2["volatile",2]`)
	_ = s.Sockets().Volatile().Emit("volatile", 3)
	ws.expect(`2["volatile",3]`)
	if p := m.get(); fmt.Sprint(p) != `[42["kept",1]]` {
		t.Errorf("polling client got %q, want only the kept one", p)
	}
	_ = s.Sockets().Volatile().Emit("volatile", 4) // its queue is empty now
	if p := m.get(); fmt.Sprint(p) != `[42["volatile",4]]` {
		t.Errorf("polling client got %q", p)
	}
}

// TestOnUpgrade: a polling client upgrades to WebSocket; the Upgrade hooks
// run with each of its sockets, and packets follow the upgrade.
func TestOnUpgrade(t *testing.T) {
	upgraded := make(chan string, 2)
	s := startIO(t, Options{}, func(io *Server) {
		io.AddHooks(&Hooks{Upgrade: func(so *Socket) { upgraded <- so.Namespace().Name() + " " + so.Conn().Transport() }})
		io.Of("/other")
	})
	m := manualPollOpen(t, s)
	m.post("40", "40/other,")
	var sid string
	for answers := 0; answers < 2; {
		for _, p := range m.get() {
			if strings.HasPrefix(p, "40{") {
				var a connectAnswer
				_ = json.Unmarshal([]byte(p[2:]), &a)
				sid = a.SID
			}
			if strings.HasPrefix(p, "40") {
				answers++
			}
		}
	}
	pending := make(chan []string, 1)
	go func() { pending <- m.get() }()
	waitFor(t, "GET pending", func() bool { return s.Engine().Session(m.sid).Waiting() })
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket&sid="+m.sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	_ = ws.SetReadDeadline(time.Now().Add(waitTimeout))
	if err := ws.WriteMessage(websocket.TextMessage, []byte("2probe")); err != nil {
		t.Fatal(err)
	}
	if _, p, err := ws.ReadMessage(); err != nil || string(p) != "3probe" {
		t.Fatalf("probe: %q %v", p, err)
	}
	if p := recv(t, pending); fmt.Sprint(p) != "[6]" {
		t.Errorf("pending GET released with %q, want NOOP", p)
	}
	_ = s.To(sid).Emit("sent while paused")
	if err := ws.WriteMessage(websocket.TextMessage, []byte("5")); err != nil {
		t.Fatal(err)
	}
	got := []string{recv(t, upgraded), recv(t, upgraded)}
	slices.Sort(got)
	if fmt.Sprint(got) != "[/ websocket /other websocket]" {
		t.Errorf("OnUpgrade calls %q", got)
	}
	_ = s.To(sid).Emit("over ws")
	for _, want := range []string{`42["sent while paused"]`, `42["over ws"]`} {
		if _, p, err := ws.ReadMessage(); err != nil || string(p) != want {
			t.Errorf("after the upgrade: %q %v, want %q", p, err, want)
		}
	}
}
