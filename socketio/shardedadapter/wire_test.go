package shardedadapter

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// nodeFixtures is testdata/node-messages.json, what Node's sharded adapter
// published (test/gen-sharded-fixtures.mjs).
type nodeFixtures struct {
	UID   string `json:"uid"`
	Cases []struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
		JSON    bool   `json:"json"`
		Payload string `json:"payload"`
	} `json:"cases"`
}

func loadFixtures(t *testing.T) (nodeFixtures, map[string][]byte, map[string]string) {
	t.Helper()
	b, err := os.ReadFile("testdata/node-messages.json")
	if err != nil {
		t.Fatal(err)
	}
	var f nodeFixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	payloads, channels := map[string][]byte{}, map[string]string{}
	for _, c := range f.Cases {
		p, err := base64.StdEncoding.DecodeString(c.Payload)
		if err != nil {
			t.Fatal(err)
		}
		payloads[c.Name], channels[c.Name] = p, c.Channel
	}
	return f, payloads, channels
}

func args(t *testing.T, list ...string) []socketio.Arg {
	var out []socketio.Arg
	for _, s := range list {
		out = append(out, socketio.Arg{JSON: json.RawMessage(s)})
	}
	return out
}

// A Go node writes, byte for byte, what Node's sharded adapter publishes
// for the same operation, on the same channel (JSON, or msgpack with
// binary); and reads it back.
func TestWireMatchesNode(t *testing.T) {
	f, payloads, channels := loadFixtures(t)
	a := &nsAdapter{name: "/", uid: f.UID, main: "socket.io#/#"}
	reqID := func(name string) string {
		m, err := decode(payloads[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		id, _ := m.requestID()
		return id
	}
	bcast := func(o socketio.BroadcastOptions, event string, a ...socketio.Arg) *socketio.BroadcastPacket {
		return &socketio.BroadcastPacket{Nsp: "/", Event: event, Args: a, ID: -1, Opts: o}
	}
	type tc struct {
		name    string
		channel string
		enc     func() ([]byte, error)
	}
	bin := socketio.Arg{JSON: json.RawMessage(`{"b":{"_placeholder":true,"num":0}}`), Attachments: [][]byte{{4}}}
	cases := []tc{
		{"broadcast", a.broadcastChannel(socketio.BroadcastOptions{}), func() ([]byte, error) {
			return encodeBroadcast(f.UID, bcast(socketio.BroadcastOptions{}, "message", args(t, `"hi"`, "{\"a\":[1,2.5,null],\"é\":\"\u2028\"}")...), "")
		}},
		{"broadcast-room", a.broadcastChannel(socketio.BroadcastOptions{Rooms: []string{"room1"}}), func() ([]byte, error) {
			return encodeBroadcast(f.UID, bcast(socketio.BroadcastOptions{Rooms: []string{"room1"}}, "m", args(t, "1")...), "")
		}},
		{"broadcast-rooms-except-volatile", a.broadcastChannel(socketio.BroadcastOptions{Rooms: []string{"r1", "r2"}}), func() ([]byte, error) {
			o := socketio.BroadcastOptions{Rooms: []string{"r1", "r2"}, Except: []string{"x"}, Volatile: true}
			return encodeBroadcast(f.UID, bcast(o, "m", args(t, "true")...), "")
		}},
		{"broadcast-sid", a.broadcastChannel(socketio.BroadcastOptions{Rooms: []string{"abcdefghijklmnopqrst"}}), func() ([]byte, error) {
			return encodeBroadcast(f.UID, bcast(socketio.BroadcastOptions{Rooms: []string{"abcdefghijklmnopqrst"}}, "m"), "")
		}},
		{"broadcast-binary", a.main, func() ([]byte, error) {
			return encodeBroadcast(f.UID, bcast(socketio.BroadcastOptions{}, "bin", socketio.Binary([]byte{1, 2, 3}), bin), "")
		}},
		{"broadcast-ack", a.main, func() ([]byte, error) {
			return encodeBroadcast(f.UID, bcast(socketio.BroadcastOptions{Timeout: time.Second}, "ask", args(t, `"q"`)...), reqID("broadcast-ack"))
		}},
		{"sockets-join", a.main, func() ([]byte, error) {
			return encodeRooms(msgSocketsJoin, f.UID, "/", socketio.BroadcastOptions{Rooms: []string{"a"}}, []string{"r1", "r2"})
		}},
		{"sockets-leave", a.main, func() ([]byte, error) {
			return encodeRooms(msgSocketsLeave, f.UID, "/", socketio.BroadcastOptions{Except: []string{"b"}}, []string{"r1"})
		}},
		{"disconnect-sockets", a.main, func() ([]byte, error) {
			return encodeDisconnect(f.UID, "/", socketio.BroadcastOptions{Rooms: []string{"a"}}, true)
		}},
		{"server-side-emit", a.main, func() ([]byte, error) {
			return encodeServerSideEmit(f.UID, "/", "", "hello", args(t, `"world"`, "1"))
		}},
		{"server-side-emit-ack", a.main, func() ([]byte, error) {
			return encodeServerSideEmit(f.UID, "/", reqID("server-side-emit-ack"), "ping", args(t, "2"))
		}},
		{"fetch-sockets", a.main, func() ([]byte, error) {
			return encodeFetchSockets(f.UID, "/", reqID("fetch-sockets"), socketio.BroadcastOptions{Rooms: []string{"r1"}})
		}},
		{"server-side-emit-response", a.responseChannel("fedcba9876543210"), func() ([]byte, error) {
			arg := socketio.Arg{JSON: json.RawMessage(`{"pong":7}`)}
			return encodeArgResponse(msgServerSideEmitResponse, f.UID, "/", "req1", &arg)
		}},
		{"fetch-sockets-response", a.responseChannel("fedcba9876543210"), func() ([]byte, error) {
			return encodeFetchResponse(f.UID, "/", "req2", nil)
		}},
		{"broadcast-client-count", a.responseChannel("fedcba9876543210"), func() ([]byte, error) {
			return encodeClientCount(f.UID, "/", "req3", 0)
		}},
	}
	if len(cases) != len(f.Cases) {
		t.Fatalf("%d cases for %d fixtures", len(cases), len(f.Cases))
	}
	for _, c := range cases {
		want, ok := payloads[c.name]
		if !ok {
			t.Fatalf("no fixture %s", c.name)
		}
		got, err := c.enc()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, want)
		}
		if c.channel != channels[c.name] {
			t.Errorf("%s: channel %q, Node's %q", c.name, c.channel, channels[c.name])
		}
	}

	// Reading Node's messages.
	m, err := decode(payloads["broadcast-binary"])
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.broadcast()
	if err != nil {
		t.Fatal(err)
	}
	if m.uid != f.UID || m.nsp != "/" || p.Event != "bin" || len(p.Args) != 2 {
		t.Fatalf("binary broadcast read as %+v %+v", m, p)
	}
	if b, ok := p.Args[0].Bytes(); !ok || string(b) != "\x01\x02\x03" {
		t.Errorf("first argument: %q %v", p.Args[0].JSON, p.Args[0].Attachments)
	}
	if string(p.Args[1].JSON) != string(bin.JSON) || len(p.Args[1].Attachments) != 1 || p.Args[1].Attachments[0][0] != 4 {
		t.Errorf("second argument: %q %v", p.Args[1].JSON, p.Args[1].Attachments)
	}
	m, _ = decode(payloads["broadcast-rooms-except-volatile"])
	if o := m.opts(); !o.Volatile || len(o.Rooms) != 2 || o.Except[0] != "x" {
		t.Errorf("opts read as %+v", o)
	}
	m, _ = decode(payloads["broadcast-ack"])
	if o := m.opts(); o.Timeout != time.Second {
		t.Errorf("timeout read as %v", o.Timeout)
	}
	m, _ = decode(payloads["server-side-emit"])
	if ev, a, err := m.event(m.data.Packet); err != nil || ev != "hello" || len(a) != 2 || string(a[1].JSON) != "1" {
		t.Errorf("server-side event read as %q %v %v", ev, a, err)
	}
}

// Garbage costs nothing but an error.
func FuzzDecode(f *testing.F) {
	b, _ := os.ReadFile("testdata/node-messages.json")
	var fx nodeFixtures
	_ = json.Unmarshal(b, &fx)
	for _, c := range fx.Cases {
		p, _ := base64.StdEncoding.DecodeString(c.Payload)
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := decode(payload)
		if err != nil {
			return
		}
		_ = m.opts()
		_, _ = m.broadcast()
		_, _, _ = m.event(m.data.Packet)
		_, _ = m.arg(m.data.Packet)
	})
}
