package streamsadapter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
	"github.com/gorilla/websocket"
)

// nodePeer is testdata/node-peer.mjs: a Node.js node on the stream.
type nodePeer struct {
	t     *testing.T
	stdin io.WriteCloser
	lines chan map[string]json.RawMessage
}

func startNodePeer(t *testing.T, stream string) *nodePeer {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../../node_modules/@socket.io/redis-streams-adapter")
	}
	if err != nil {
		needs(t, "node or node_modules missing (scripts/setup.sh --test installs them): %v", err)
	}
	cmd := exec.Command(bin, "testdata/node-peer.mjs")
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+testRedisAddr, "STREAM="+stream)
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
	p := &nodePeer{t: t, stdin: stdin, lines: make(chan map[string]json.RawMessage, 64)}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]json.RawMessage
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines <- m
			}
		}
	}()
	p.expect("ready")
	return p
}

func (p *nodePeer) send(cmd string, args ...string) {
	p.t.Helper()
	line := `{"cmd":"` + cmd + `"`
	for i := 0; i+1 < len(args); i += 2 {
		line += `,"` + args[i] + `":` + args[i+1]
	}
	if _, err := io.WriteString(p.stdin, line+"}\n"); err != nil {
		p.t.Fatal(err)
	}
}

func (p *nodePeer) expect(ev string) map[string]json.RawMessage {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("node exited while waiting for %s", ev)
			}
			if string(m["ev"]) == `"`+ev+`"` {
				return m
			}
			if string(m["ev"]) == `"error"` || string(m["ev"]) == `"redis-error"` {
				p.t.Errorf("node: %s", m["err"])
			}
		case <-timeout:
			p.t.Fatalf("node: no %s", ev)
		}
	}
}

// wsPeer is a bare Socket.IO client that shows packets with their
// attachments and can answer acks.
type wsPeer struct {
	t       *testing.T
	conn    *websocket.Conn
	wmu     sync.Mutex
	packets chan wsPacket
	sid     string
}

type wsPacket struct {
	text string
	bins [][]byte
}

func wsDial(t *testing.T, url, auth string) *wsPeer {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &wsPeer{t: t, conn: conn, packets: make(chan wsPacket, 100)}
	if _, open, err := conn.ReadMessage(); err != nil || len(open) == 0 || open[0] != '0' {
		t.Fatalf("open: %q %v", open, err)
	}
	go c.read()
	c.send("0" + auth)
	p := c.next()
	var ans struct{ SID string }
	if !strings.HasPrefix(p.text, "0{") || json.Unmarshal([]byte(p.text[1:]), &ans) != nil {
		t.Fatalf("CONNECT answer %q", p.text)
	}
	c.sid = ans.SID
	return c
}

func (c *wsPeer) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.WriteMessage(websocket.TextMessage, []byte("4"+s))
}

func (c *wsPeer) read() {
	defer close(c.packets)
	var pending *wsPacket
	want := 0
	for {
		typ, m, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			if pending != nil {
				pending.bins = append(pending.bins, m)
				if len(pending.bins) == want {
					c.packets <- *pending
					pending = nil
				}
			}
			continue
		}
		switch {
		case string(m) == "2":
			c.wmu.Lock()
			_ = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
			c.wmu.Unlock()
		case len(m) > 1 && m[0] == '4':
			p := wsPacket{text: string(m[1:])}
			if p.text[0] == '5' || p.text[0] == '6' {
				n, _ := strconv.Atoi(p.text[1:strings.IndexByte(p.text, '-')])
				pending, want = &p, n
				continue
			}
			c.packets <- p
		}
	}
}

func (c *wsPeer) next() wsPacket {
	c.t.Helper()
	select {
	case p, ok := <-c.packets:
		if !ok {
			c.t.Fatal("connection closed")
		}
		return p
	case <-time.After(5 * time.Second):
		c.t.Fatal("no packet within 5s")
	}
	return wsPacket{}
}

// nextEvent returns the next event named event, skipping others.
func (c *wsPeer) nextEvent(event string) wsPacket {
	c.t.Helper()
	for {
		p := c.next()
		if i := strings.IndexByte(p.text, '['); i >= 0 && (p.text[0] == '2' || p.text[0] == '5') &&
			strings.HasPrefix(p.text[i:], "["+strconv.Quote(event)) {
			return p
		}
	}
}

// TestNodeRequests: a Go node and a Node.js node on one stream, each with
// a client: broadcasts (binary too), server-side events with and without
// acks, fetchSockets, broadcasts with acks and socketsJoin work both ways.
func TestNodeRequests(t *testing.T) {
	rc := testRedis(t)
	name := testName()
	c, err := New(Options{URL: "redis://" + testRedisAddr, StreamName: name, ChannelPrefix: name, RequestsTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := socketio.NewServer(socketio.Options{Adapter: c})
	if err != nil {
		t.Fatal(err)
	}
	srv.OnConnection(func(s *socketio.Socket) {
		s.Join("room1")
		s.SetData(map[string]any{"name": "ann"})
	})
	srv.Sockets().OnServerSideEmit("go-ping", func(ev *socketio.Event) { _ = ev.Ack("go-pong", ev.Arg(0)) })
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { ts.Close(); srv.Close(); _ = c.Close() })
	ca := wsDial(t, "ws"+strings.TrimPrefix(ts.URL, "http")+"/socket.io/?EIO=4&transport=websocket", `{"token":"go"}`)
	node := startNodePeer(t, name)
	public := name + "#/#"
	eventually(t, "both nodes on the channel", 10*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(context.Background(), public).Result()
		return n[public] == 2
	})

	t.Run("go broadcast", func(t *testing.T) {
		if err := srv.Emit("message", json.RawMessage(`{"b":1,"a":[1.5,-2]}`), []byte{1, 2}, "é😀"); err != nil {
			t.Fatal(err)
		}
		if got, want := string(node.expect("message")["args"]), `[{"b":1,"a":[1.5,-2]},{"hex":"0102"},"é😀"]`; got != want {
			t.Errorf("node's client got %s, want %s", got, want)
		}
		ca.nextEvent("message")
	})

	t.Run("node broadcast", func(t *testing.T) {
		node.send("emit")
		p := ca.nextEvent("message")
		want := `51-["message",{"int":42,"float":1.5,"nested":{"b":1,"a":2},"bin":{"_placeholder":true,"num":0}},"é😀"]`
		if p.text != want || len(p.bins) != 1 || !bytes.Equal(p.bins[0], []byte{1, 2, 3}) {
			t.Errorf("got %q %v, want %q", p.text, p.bins, want)
		}
		node.expect("message")
	})

	t.Run("server-side emit to node", func(t *testing.T) {
		done := make(chan []socketio.Arg, 1)
		err := srv.Sockets().ServerSideEmit("ping", "from go", socketio.AckFunc(func(args []socketio.Arg, err error) {
			if err != nil {
				t.Error(err)
			}
			done <- args
		}))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case args := <-done:
			if len(args) != 1 || string(args[0].JSON) != `{"pong":"from go"}` {
				t.Errorf("acks %v", args)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no ack")
		}
		_ = srv.Sockets().ServerSideEmit("note", 1, []byte{5})
		if got := string(node.expect("note")["args"]); got != `[1,{"hex":"05"}]` {
			t.Errorf("node got %s", got)
		}
	})

	t.Run("server-side emit from node", func(t *testing.T) {
		node.send("sseAck")
		m := node.expect("sseAck")
		if string(m["err"]) != "null" || string(m["res"]) != `["go-pong"]` {
			t.Errorf("node got %s %s", m["err"], m["res"])
		}
	})

	t.Run("fetch from node", func(t *testing.T) {
		node.send("fetch")
		var sockets []struct {
			ID    string
			Rooms []string
			Data  json.RawMessage
		}
		if err := json.Unmarshal(node.expect("fetch")["sockets"], &sockets); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(sockets, func(s struct {
			ID    string
			Rooms []string
			Data  json.RawMessage
		}) bool {
			return s.ID == ca.sid
		})
		if len(sockets) != 2 || i < 0 || !slices.Equal(sockets[i].Rooms, []string{ca.sid, "room1"}) || string(sockets[i].Data) != `{"name":"ann"}` {
			t.Fatalf("node fetched %+v", sockets)
		}
	})

	t.Run("fetch from go", func(t *testing.T) {
		sockets, err := srv.Sockets().FetchSockets(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(sockets) != 2 {
			t.Fatalf("fetched %d sockets", len(sockets))
		}
		var s *socketio.RemoteSocket
		for _, x := range sockets {
			if x.ID != ca.sid {
				s = x
			}
		}
		d, _ := s.Data.(map[string]any)
		if d["name"] != "node" || !slices.Contains(s.Rooms, "room1") || string(s.Handshake.Auth) != `{"token":"node"}` ||
			s.Handshake.Query.Get("EIO") != "4" || time.Since(s.Handshake.Time) > time.Minute {
			t.Errorf("node's socket %+v", s)
		}
	})

	answer := func() {
		go func() {
			p := ca.nextEvent("ask")
			id := p.text[1:strings.IndexByte(p.text, '[')]
			ca.send("3" + id + `[{"go":"yes"}]`)
		}()
	}

	t.Run("broadcast with acks from go", func(t *testing.T) {
		answer()
		done := make(chan []string, 1)
		_ = srv.Except().Timeout(3*time.Second).Emit("ask", "from go", socketio.AckFunc(func(args []socketio.Arg, err error) {
			var out []string
			for _, x := range args {
				out = append(out, string(x.JSON))
			}
			if err != nil {
				out = append(out, err.Error())
			}
			done <- out
		}))
		select {
		case got := <-done:
			slices.Sort(got)
			if want := []string{`{"go":"yes"}`, `{"node":"from go"}`}; !slices.Equal(got, want) {
				t.Errorf("acks %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no acks")
		}
	})

	t.Run("broadcast with acks from node", func(t *testing.T) {
		answer()
		node.send("ask")
		m := node.expect("ask")
		var res []json.RawMessage
		_ = json.Unmarshal(m["res"], &res)
		var got []string
		for _, r := range res {
			got = append(got, string(r))
		}
		slices.Sort(got)
		if want := []string{`{"go":"yes"}`, `{"node":"from node"}`}; string(m["err"]) != "null" || !slices.Equal(got, want) {
			t.Errorf("node got %s %q", m["err"], got)
		}
	})

	t.Run("join from node", func(t *testing.T) {
		node.send("join", "sid", `"`+ca.sid+`"`, "room", `"nroom"`)
		eventually(t, "the join", 5*time.Second, func() bool {
			return slices.Contains(srv.Sockets().Socket(ca.sid).Rooms(), "nroom")
		})
	})
}
