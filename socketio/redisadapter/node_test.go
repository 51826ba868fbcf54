package redisadapter

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/internal/testlog"
	"github.com/chatio/socketio-chat/socketio"
)

// nodePeer is testdata/node-peer.mjs: a Node.js node of the cluster.
type nodePeer struct {
	t     *testing.T
	stdin io.WriteCloser
	lines chan map[string]json.RawMessage
}

func startNodePeer(t *testing.T, prefix string) *nodePeer {
	t.Helper()
	bin, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../../node_modules/@socket.io/redis-adapter")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or node_modules missing (scripts/setup.sh --test installs them): %v", err)
		}
		t.Skipf("node or node_modules missing (scripts/setup.sh --test installs them): %v", err)
	}
	cmd := exec.Command(bin, "testdata/node-peer.mjs")
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+testRedisAddr, "REDIS_PREFIX="+prefix)
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
		_ = stdin.Close() // it exits when stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
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
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				continue
			}
			p.lines <- m
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

// expect returns the next line of event ev, skipping others.
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

// nodeSocket is a socket as Node's fetchSockets returns it.
type nodeSocket struct {
	ID        string
	Rooms     []string
	Data      json.RawMessage
	Handshake struct {
		Time    string
		Issued  float64
		Address string
		Auth    json.RawMessage
		Query   map[string]any
		Headers map[string]any
		URL     string
	}
}

// A Go node and a Node.js node on one Redis, each with a client: every
// operation works both ways, and what crosses arrives as Node delivers it.
func TestNodeInterop(t *testing.T) {
	rc := testRedis(t)
	prefix := testPrefix(t)
	a := startNode(t, newTestCluster(t, prefix), func(srv *socketio.Server) {
		srv.OnConnection(func(s *socketio.Socket) {
			s.Join("room1")
			s.SetData(map[string]any{"name": "ann"})
		})
		srv.Sockets().OnServerSideEmit("go-ping", func(ev *socketio.Event) { _ = ev.Ack("go-pong", ev.Arg(0)) })
	})
	ca := dial(t, a, "", `{"token":"go"}`)
	node := startNodePeer(t, prefix)
	waitFor(t, "both nodes", 10*time.Second, func() bool {
		n, _ := rc.PubSubNumSub(t.Context(), prefix+"-request#/#").Result()
		return n[prefix+"-request#/#"] == 2
	})

	t.Run("go broadcast", func(t *testing.T) {
		err := a.io.Emit("message", json.RawMessage(`{"b":1,"2":2,"a":[1.5,1e+21,5e-7,-0.25]}`), []byte{1, 2}, "é😀",
			json.RawMessage(`"\ud800x"`))
		if err != nil {
			t.Fatal(err)
		}
		// Node reads the key order of a JavaScript object, and a lone
		// surrogate (WTF-8 on the wire) as U+FFFD.
		got := node.expect("message")["args"]
		if want := `[{"2":2,"b":1,"a":[1.5,1e+21,5e-7,-0.25]},{"hex":"0102"},"é😀","���x"]`; string(got) != want {
			t.Errorf("node's client got\n %s\nwant %s", got, want)
		}
		ca.nextEvent("message", 5*time.Second)
	})

	t.Run("node broadcast", func(t *testing.T) {
		node.send("emit")
		checkPacket(t, ca.nextEvent("message", 5*time.Second), packet{
			text: `52-["message",{"int":42,"neg":-7,"float":1.5,"str":"é✓😀","nested":{"2":2,"b":1},"bin":{"_placeholder":true,"num":0}},` +
				`{"_placeholder":true,"num":1},null,[true,false]]`,
			bins: [][]byte{{1, 2, 3}, {4}},
		})
		node.expect("message")
	})

	t.Run("server-side emit to node", func(t *testing.T) {
		done := make(chan []socketio.Arg, 1)
		err := a.io.Sockets().ServerSideEmit("ping", "from go", socketio.AckFunc(func(args []socketio.Arg, err error) {
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
			if len(args) != 1 || args[0].String() != `{"pong":"from go"}` {
				t.Errorf("acks %v", args)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no ack")
		}
		_ = a.io.Sockets().ServerSideEmit("note", 1, []byte{5})
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
		var sockets []nodeSocket
		if err := json.Unmarshal(node.expect("fetch")["sockets"], &sockets); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(sockets, func(s nodeSocket) bool {
			return s.ID == ca.sid
		})
		if len(sockets) != 2 || i < 0 {
			t.Fatalf("node fetched %+v", sockets)
		}
		s := sockets[i]
		h := s.Handshake
		if !slices.Equal(s.Rooms, []string{ca.sid, "room1"}) || string(s.Data) != `{"name":"ann"}` ||
			string(h.Auth) != `{"token":"go"}` || h.Address != "127.0.0.1" || h.Query["EIO"] != "4" ||
			h.Headers["x-test"] != "yes" || !strings.Contains(h.Time, "GMT") || time.Since(time.UnixMilli(int64(h.Issued))) > time.Minute ||
			!strings.HasPrefix(h.URL, "/socket.io/?EIO=4") {
			t.Errorf("node sees our socket as %+v", s)
		}
	})

	t.Run("fetch from go", func(t *testing.T) {
		sockets, err := a.io.Sockets().FetchSockets(context.Background())
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
		h := s.Handshake
		if string(s.Data.(json.RawMessage)) != `{"name":"node"}` || !slices.Contains(s.Rooms, "room1") ||
			string(h.Auth) != `{"token":"node"}` || h.Query.Get("EIO") != "4" || time.Since(h.Time) > time.Minute ||
			h.Headers.Get("Upgrade") != "websocket" {
			t.Errorf("node's socket %+v", s)
		}
	})

	answer := func() {
		go func() {
			p := ca.nextEvent("ask", 5*time.Second)
			id := p.text[1:strings.IndexByte(p.text, '[')]
			ca.sendText("3" + id + `[{"go":"yes"}]`)
		}()
	}

	t.Run("broadcast with acks from go", func(t *testing.T) {
		answer()
		done := make(chan []string, 1)
		_ = a.io.Except().Timeout(3*time.Second).Emit("ask", "from go", socketio.AckFunc(func(args []socketio.Arg, err error) {
			var out []string
			for _, x := range args {
				out = append(out, x.String())
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
		waitFor(t, "the join", 5*time.Second, func() bool {
			return slices.Contains(a.io.Sockets().Socket(ca.sid).Rooms(), "nroom")
		})
	})
}
