package redisadapter

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/chatio/socketio-chat/socketio"
)

// nodePublications are the bytes Node's @socket.io/redis-adapter 8.3.0
// published for broadcasts, requests and answers
// (testdata/gen-node-fixtures.mjs regenerates them).
type nodePublications struct {
	UID        string            `json:"uid"`
	AdminUID   string            `json:"adminUid"`
	RequestIDs map[string]string `json:"requestIds"`
	SocketID   string            `json:"socketId"`
	cases      map[string]publicationCase
}

type publicationCase struct {
	channel string
	msg     []byte
}

func loadNodePublications(t *testing.T) *nodePublications {
	t.Helper()
	b, err := os.ReadFile("testdata/node-publish.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		nodePublications
		Cases []struct{ Name, Channel, Hex string }
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := f.nodePublications
	out.cases = map[string]publicationCase{}
	for _, c := range f.Cases {
		msg, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		out.cases[c.Name] = publicationCase{c.Channel, msg}
	}
	return &out
}

func (n *nodePublications) get(t *testing.T, name string) publicationCase {
	t.Helper()
	c, ok := n.cases[name]
	if !ok {
		t.Fatalf("no fixture %q", name)
	}
	return c
}

// wireBroadcast is a broadcast as the fixtures describe it.
type wireBroadcast struct {
	name   string
	nsp    string
	room   string // the room of the channel
	event  string
	args   []socketio.Arg
	opts   socketio.BroadcastOptions
	noEnc  bool // Node's flags that Go has no word for
	admins bool // published by the /admin adapter
}

func js(s string) socketio.Arg { return socketio.Arg{JSON: json.RawMessage(s)} }

func bin(json string, atts ...[]byte) socketio.Arg {
	return socketio.Arg{JSON: []byte(json), Attachments: atts}
}

var wireBroadcasts = []wireBroadcast{
	{name: "emit-all", nsp: "/", event: "message", args: []socketio.Arg{js(`"hello"`)}},
	{name: "emit-room", nsp: "/", room: "room1", event: "message", args: []socketio.Arg{js(`"to room1"`)},
		opts: socketio.BroadcastOptions{Rooms: []string{"room1"}}},
	{name: "emit-rooms-except", nsp: "/", event: "message", args: []socketio.Arg{js(`1`)},
		opts: socketio.BroadcastOptions{Rooms: []string{"a", "b"}, Except: []string{"c"}}},
	{name: "emit-flags", nsp: "/", event: "message", args: []socketio.Arg{js(`"v"`)},
		opts: socketio.BroadcastOptions{Volatile: true, NoCompress: true}},
	{name: "emit-volatile", nsp: "/", event: "message", args: []socketio.Arg{js(`"v"`)},
		opts: socketio.BroadcastOptions{Volatile: true}},
	{name: "emit-timeout", nsp: "/", event: "message", args: []socketio.Arg{js(`"t"`)},
		opts: socketio.BroadcastOptions{Timeout: 1500 * time.Millisecond}},
	{name: "emit-values", nsp: "/", event: "message", args: []socketio.Arg{bin(
		`{"int":42,"neg":-7,"big":1099511627776,"float":1.5,"str":"é✓","t":true,"f":false,"nil":null,`+
			`"list":[1,"two",null],"bin":{"_placeholder":true,"num":0}}`, []byte{0, 1, 2, 255})}},
	{name: "emit-nsp", nsp: "/admin", event: "message", args: []socketio.Arg{js(`"admin"`)}, admins: true},
	{name: "emit-binary-nested", nsp: "/", event: "message", args: []socketio.Arg{
		bin(`{"a":[{"_placeholder":true,"num":0},{"b":{"_placeholder":true,"num":1}}]}`, []byte{1, 2}, []byte{3}),
		bin(`{"_placeholder":true,"num":0}`, []byte{4}),
		js(`"x"`),
	}},
	{name: "emit-keys", nsp: "/", event: "message", args: []socketio.Arg{js(`{"1":4,"2":2,"b":5,"a":3}`)}},
}

// Node's broadcasts read as the packets they stand for.
func TestWireDecodesNodeBroadcasts(t *testing.T) {
	f := loadNodePublications(t)
	for _, tt := range wireBroadcasts {
		t.Run(tt.name, func(t *testing.T) {
			c := f.get(t, tt.name)
			room, ok := newChannels("fixture", tt.nsp, "me").roomOf(c.channel)
			if !ok || room != tt.room {
				t.Fatalf("roomOf(%q) = %q, %v; want %q, true", c.channel, room, ok, tt.room)
			}
			uid := f.UID
			if tt.admins {
				uid = f.AdminUID
			}
			if p, err := newDecoder(c.msg).broadcast(uid); p != nil || err != nil {
				t.Errorf("own broadcast: %+v, %v; want it ignored", p, err)
			}
			p, err := newDecoder(c.msg).broadcast("me")
			if err != nil {
				t.Fatal(err)
			}
			if p.Nsp != tt.nsp || p.Event != tt.event || p.ID != -1 {
				t.Errorf("packet %s %q id %d, want %s %q -1", p.Nsp, p.Event, p.ID, tt.nsp, tt.event)
			}
			checkArgs(t, p.Args, tt.args)
			if !slices.Equal(p.Opts.Rooms, tt.opts.Rooms) || !slices.Equal(p.Opts.Except, tt.opts.Except) ||
				p.Opts.Volatile != tt.opts.Volatile || p.Opts.Timeout != tt.opts.Timeout || p.Opts.Local ||
				p.Opts.NoCompress != tt.opts.NoCompress {
				t.Errorf("opts = %+v, want %+v", p.Opts, tt.opts)
			}
		})
	}
}

func checkArgs(t *testing.T, got, want []socketio.Arg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d arguments, want %d: %v", len(got), len(want), got)
	}
	for i := range got {
		if !bytes.Equal(got[i].JSON, want[i].JSON) {
			t.Errorf("argument %d\n got %.300s\nwant %.300s", i, got[i].JSON, want[i].JSON)
		}
		if len(got[i].Attachments) != len(want[i].Attachments) {
			t.Errorf("argument %d: %d attachments, want %d", i, len(got[i].Attachments), len(want[i].Attachments))
			continue
		}
		for k := range got[i].Attachments {
			if !bytes.Equal(got[i].Attachments[k], want[i].Attachments[k]) {
				t.Errorf("argument %d attachment %d = %x, want %x", i, k, got[i].Attachments[k], want[i].Attachments[k])
			}
		}
	}
}

// Our bytes are Node's bytes for the same broadcast: same array, same keys
// in the same order, same number formats, same channel.
func TestWireEncodesBroadcastsLikeNode(t *testing.T) {
	f := loadNodePublications(t)
	for _, tt := range wireBroadcasts {
		if tt.noEnc {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			c := f.get(t, tt.name)
			uid := f.UID
			if tt.admins {
				uid = f.AdminUID
			}
			var e encoder
			p := &socketio.BroadcastPacket{Nsp: tt.nsp, Event: tt.event, Args: tt.args, ID: -1, Opts: tt.opts}
			if err := e.broadcast(uid, p); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(e.Buf, c.msg) {
				t.Errorf("encoded\n got %x\nwant %x", e.Buf, c.msg)
			}
			if ch := newChannels("fixture", tt.nsp, "x").broadcastChannel(tt.opts.Rooms); ch != c.channel {
				t.Errorf("channel = %q, want %q", ch, c.channel)
			}
		})
	}
}

// A Go client's JSON with the keys of the emit-keys case in the order it
// sent them ({"b":1,"2":2,"a":3,"1":4,"b":5}) is published as Node publishes
// what JSON.parse makes of it.
func TestWireEncodesKeysInJavaScriptOrder(t *testing.T) {
	f := loadNodePublications(t)
	var e encoder
	p := &socketio.BroadcastPacket{Nsp: "/", Event: "message", ID: -1,
		Args: []socketio.Arg{js(`{"b":1,"2":2,"a":3,"1":4,"b":5}`)}}
	if err := e.broadcast(f.UID, p); err != nil {
		t.Fatal(err)
	}
	if want := f.get(t, "emit-keys").msg; !bytes.Equal(e.Buf, want) {
		t.Errorf("encoded\n got %x\nwant %x", e.Buf, want)
	}
}

// Requests are Node's, byte for byte.
func TestWireEncodesRequestsLikeNode(t *testing.T) {
	f := loadNodePublications(t)
	a := &nsAdapter{uid: f.UID, name: "/", ch: newChannels("fixture", "/", f.UID)}
	tests := []struct {
		name string
		got  func() []byte
	}{
		{"request-join", func() []byte {
			return a.roomsRequest(reqRemoteJoin, socketio.BroadcastOptions{Rooms: []string{"a"}}, []string{"b", "c"})
		}},
		{"request-leave", func() []byte {
			return a.roomsRequest(reqRemoteLeave, socketio.BroadcastOptions{Except: []string{"a"}}, []string{"b"})
		}},
		{"request-disconnect", func() []byte {
			return a.disconnectRequest(socketio.BroadcastOptions{Rooms: []string{"a"}}, true)
		}},
		{"request-sse", func() []byte {
			return a.serverSideEmitRequest("", "ping", []socketio.Arg{js(`1`), bin(`{"a":{"_placeholder":true,"num":0}}`, []byte{1, 2})})
		}},
		{"request-sse-ack", func() []byte {
			return a.serverSideEmitRequest(f.RequestIDs["request-sse-ack"], "ping", []socketio.Arg{js(`"x"`)})
		}},
		{"request-fetch", func() []byte {
			return a.fetchRequest(f.RequestIDs["request-fetch"], socketio.BroadcastOptions{Rooms: []string{"room1"}, Except: []string{"room2"}})
		}},
		{"answer-sockets", func() []byte { return listResponse("req-sockets", "sockets", []string{f.SocketID}) }},
		{"answer-rooms", func() []byte { return listResponse("req-rooms", "rooms", []string{f.SocketID, "room1"}) }},
		{"answer-sse-ack", func() []byte {
			return serverSideEmitResponse("req-sse", []socketio.Arg{bin(`{"pong":"hi","bin":{"_placeholder":true,"num":0}}`, []byte{9})})
		}},
		{"answer-broadcast-ack-0", func() []byte { return clientCountResponse("req-bwa", 1) }},
		{"answer-broadcast-ack-1", func() []byte {
			b, err := ackResponse("req-bwa", bin(`{"ok":true,"bin":{"_placeholder":true,"num":0}}`, []byte{7}))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.get(t, tt.name)
			if got := tt.got(); !bytes.Equal(got, c.msg) {
				t.Errorf("encoded\n got %q\nwant %q", got, c.msg)
			}
		})
	}
}

// The broadcast-with-ack request is msgpack; its bytes are Node's too.
func TestWireEncodesBroadcastWithAckLikeNode(t *testing.T) {
	f := loadNodePublications(t)
	c := f.get(t, "request-broadcast-ack")
	var e encoder
	p := &socketio.BroadcastPacket{Nsp: "/", Event: "message", Args: []socketio.Arg{js(`"q"`), js(`{"n":1}`)},
		Opts: socketio.BroadcastOptions{Timeout: 1500 * time.Millisecond}}
	e.MapHeader(5)
	e.String("uid")
	e.String(f.UID)
	e.String("requestId")
	e.String(f.RequestIDs["request-broadcast-ack"])
	e.String("type")
	e.Uint(reqBroadcast)
	e.String("packet")
	if err := e.packet(p); err != nil {
		t.Fatal(err)
	}
	e.String("opts")
	e.opts(p.Opts, true)
	if !bytes.Equal(e.Buf, c.msg) {
		t.Errorf("encoded\n got %x\nwant %x", e.Buf, c.msg)
	}
	// And it reads back as Node's request.
	var req request
	if err := req.fromMsgpack(c.msg); err != nil {
		t.Fatal(err)
	}
	if req.typ != reqBroadcast || req.uid != f.UID || req.requestID != f.RequestIDs["request-broadcast-ack"] ||
		req.packet == nil || req.opts == nil || req.opts.Timeout != 1500*time.Millisecond {
		t.Fatalf("request = %+v", req)
	}
	checkArgs(t, req.packet.Args, p.Args)
}

// Node's requests and answers read as they should.
func TestWireDecodesNodeRequests(t *testing.T) {
	f := loadNodePublications(t)
	var join request
	if err := join.fromJSON(f.get(t, "request-join").msg); err != nil {
		t.Fatal(err)
	}
	if join.typ != reqRemoteJoin || join.uid != f.UID || !slices.Equal(join.opts.Rooms, []string{"a"}) ||
		len(join.opts.Except) != 0 || !slices.Equal(join.rooms, []string{"b", "c"}) {
		t.Errorf("join = %+v", join)
	}
	var disc request
	if err := disc.fromJSON(f.get(t, "request-disconnect").msg); err != nil {
		t.Fatal(err)
	}
	if disc.typ != reqRemoteDisconnect || !disc.close {
		t.Errorf("disconnect = %+v", disc)
	}
	var sse request
	if err := sse.fromJSON(f.get(t, "request-sse").msg); err != nil {
		t.Fatal(err)
	}
	if sse.typ != reqServerSideEmit || sse.hasID || sse.event != "ping" {
		t.Errorf("sse = %+v", sse)
	}
	checkArgs(t, sse.data, []socketio.Arg{js(`1`), js(`{"a":{"type":"Buffer","data":[1,2]}}`)})
	var sseAck request
	if err := sseAck.fromJSON(f.get(t, "request-sse-ack").msg); err != nil {
		t.Fatal(err)
	}
	if !sseAck.hasID || sseAck.requestID != f.RequestIDs["request-sse-ack"] {
		t.Errorf("sse with ack = %+v", sseAck)
	}
	var fetch request
	if err := fetch.fromJSON(f.get(t, "request-fetch").msg); err != nil {
		t.Fatal(err)
	}
	if fetch.typ != reqRemoteFetch || !slices.Equal(fetch.opts.Rooms, []string{"room1"}) || !slices.Equal(fetch.opts.Except, []string{"room2"}) {
		t.Errorf("fetch = %+v", fetch)
	}

	var count, ack, sseAnswer response
	if err := count.fromJSON(f.get(t, "answer-broadcast-ack-0").msg); err != nil {
		t.Fatal(err)
	}
	if count.typ != reqBroadcastClientCount || count.requestID != "req-bwa" || !count.hasCount || count.clientCount != 1 {
		t.Errorf("client count = %+v", count)
	}
	if err := ack.fromMsgpack(f.get(t, "answer-broadcast-ack-1").msg); err != nil {
		t.Fatal(err)
	}
	if ack.typ != reqBroadcastAck || ack.requestID != "req-bwa" || !ack.hasPacket {
		t.Errorf("ack = %+v", ack)
	}
	checkArgs(t, []socketio.Arg{ack.packet}, []socketio.Arg{bin(`{"ok":true,"bin":{"_placeholder":true,"num":0}}`, []byte{7})})
	if err := sseAnswer.fromJSON(f.get(t, "answer-sse-ack").msg); err != nil {
		t.Fatal(err)
	}
	checkArgs(t, []socketio.Arg{sseAnswer.data}, []socketio.Arg{js(`{"pong":"hi","bin":{"type":"Buffer","data":[9]}}`)})
}

// A Node node's fetchSockets answer fills a RemoteSocket.
func TestWireDecodesNodeSockets(t *testing.T) {
	f := loadNodePublications(t)
	var resp response
	if err := resp.fromJSON(f.get(t, "answer-fetch").msg); err != nil {
		t.Fatal(err)
	}
	if !resp.hasSockets || len(resp.sockets) != 1 || resp.requestID != "req-fetch" {
		t.Fatalf("answer = %+v", resp)
	}
	srv, local := localServer(t)
	a := &nsAdapter{nsp: srv.Sockets(), local: local}
	s, err := a.socketFromWire(resp.sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handshake
	if s.ID != f.SocketID || !slices.Equal(s.Rooms, []string{f.SocketID, "room1"}) {
		t.Errorf("socket %q rooms %q", s.ID, s.Rooms)
	}
	if got, want := string(s.Data.(json.RawMessage)), `{"name":"ann","n":1}`; got != want {
		t.Errorf("data = %s, want %s", got, want)
	}
	if string(h.Auth) != `{"token":"abc"}` || h.Query.Get("q") != "1" || h.Query.Get("EIO") != "4" ||
		h.Headers.Get("Upgrade") != "websocket" || h.Address != "127.0.0.1" || h.XDomain || h.Secure {
		t.Errorf("handshake = %+v", h)
	}
	if d := time.Since(h.Time); h.Time.IsZero() || d < 0 {
		t.Errorf("handshake time %v", h.Time)
	}
	if h.URL == "" || h.URL[0] != '/' {
		t.Errorf("url %q", h.URL)
	}
}

// Our fetchSockets answer has Node's shape and reads back.
func TestWireSocketsRoundTrip(t *testing.T) {
	srv, local := localServer(t)
	issued := time.UnixMilli(1700000000123)
	in := &socketio.RemoteSocket{ID: "sid1", Handshake: socketio.Handshake{
		Headers: http.Header{"Cookie": {"a=1", "b=2"}, "User-Agent": {"go"}, "Set-Cookie": {"x=1"}},
		Time:    issued, Address: "10.0.0.1:4567", XDomain: true, Secure: true,
		URL: "/socket.io/?EIO=4&transport=websocket&q=1&q=2", Query: map[string][]string{"q": {"1", "2"}, "EIO": {"4"}},
		Auth: json.RawMessage(`{"token":"\ud800"}`),
	}, Rooms: []string{"sid1", "room1"}, Data: map[string]any{"name": "ann", "bin": []byte{1}}}
	b := fetchResponse("r1", []*socketio.RemoteSocket{in})
	var v struct {
		RequestID string `json:"requestId"`
		Sockets   []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	hs := string(v.Sockets[0]["handshake"])
	want := `{"headers":{"cookie":"a=1; b=2","set-cookie":["x=1"],"user-agent":"go"},"time":"` +
		jsDateString(issued.In(time.Local)) + `","address":"10.0.0.1","xdomain":true,"secure":true,"issued":1700000000123,` +
		`"url":"/socket.io/?EIO=4&transport=websocket&q=1&q=2","query":{"EIO":"4","q":["1","2"]},"auth":{"token":"\ud800"}}`
	if hs != want {
		t.Errorf("handshake\n got %s\nwant %s", hs, want)
	}
	if got := string(v.Sockets[0]["data"]); got != `{"bin":{"type":"Buffer","data":[1]},"name":"ann"}` {
		t.Errorf("data = %s", got)
	}
	var resp response
	if err := resp.fromJSON(b); err != nil {
		t.Fatal(err)
	}
	a := &nsAdapter{nsp: srv.Sockets(), local: local}
	out, err := a.socketFromWire(resp.sockets[0])
	if err != nil {
		t.Fatal(err)
	}
	h := out.Handshake
	if out.ID != "sid1" || !h.Time.Equal(issued) || h.Address != "10.0.0.1" || !h.XDomain || !h.Secure ||
		h.Headers.Get("Cookie") != "a=1; b=2" || h.Query["q"][1] != "2" || string(h.Auth) != `{"token":"\ud800"}` {
		t.Errorf("read back %+v", out)
	}
}

func TestWireRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xc1}, {0x91, 0xa1, 'x'}, {0x93, 0x01, 0x80, 0x80}, {0x93, 0xa1, 'x', 0x01, 0x80},
		{0x93, 0xa1, 'x', 0x81, 0xa4, 'd', 'a', 't', 'a', 0x90, 0x80}} {
		if _, err := newDecoder(b).broadcast("me"); err == nil {
			t.Errorf("broadcast(%x) accepted garbage", b)
		}
	}
}

func TestChannelsRoomOf(t *testing.T) {
	ch := newChannels("socket.io", "/", "uid")
	tests := []struct {
		channel string
		room    string
		ok      bool
	}{
		{"socket.io#/#", "", true}, // io.emit
		{"socket.io#/#room1#", "room1", true},
		{"socket.io#/#a#b#", "a#b", true},
		{"socket.io#/admin#", "", false},
		{"other#/#", "", false},
	}
	for _, tt := range tests {
		room, ok := ch.roomOf(tt.channel)
		if room != tt.room || ok != tt.ok {
			t.Errorf("roomOf(%q) = %q, %v; want %q, %v", tt.channel, room, ok, tt.room, tt.ok)
		}
	}
	if got, want := newChannels("a*b", "/x?", "u").pattern(), `a\*b#/x\?#*`; got != want {
		t.Errorf("pattern = %q, want %q", got, want)
	}
}
