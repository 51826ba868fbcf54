package redisadapter

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/zishang520/socket.io/parsers/socket/v3/parser"
	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
)

// nodeFixtures are the bytes Node's @socket.io/redis-adapter 8.3.0 published
// for a few broadcasts (testdata/gen-node-fixtures.mjs regenerates them).
type nodeFixtures struct {
	UID      string `json:"uid"`
	AdminUID string `json:"adminUid"`
	Cases    []struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
		Hex     string `json:"hex"`
	} `json:"cases"`
}

func loadNodeFixtures(t *testing.T) map[string]struct {
	channel string
	msg     []byte
	uid     string
} {
	t.Helper()
	b, err := os.ReadFile("testdata/node-publish.json")
	if err != nil {
		t.Fatal(err)
	}
	var f nodeFixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]struct {
		channel string
		msg     []byte
		uid     string
	}{}
	for _, c := range f.Cases {
		msg, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		uid := f.UID
		if c.Name == "emit-nsp" {
			uid = f.AdminUID
		}
		out[c.Name] = struct {
			channel string
			msg     []byte
			uid     string
		}{c.Channel, msg, uid}
	}
	return out
}

func TestRedisWireDecodesNodeBroadcasts(t *testing.T) {
	fixtures := loadNodeFixtures(t)
	tests := []struct {
		name      string
		nsp       string
		room      string
		data      []any
		rooms     []socket.Room
		except    []socket.Room
		volatile  bool
		compress  *bool
		roomInOpt bool
	}{
		{name: "emit-all", nsp: "/", data: []any{"message", "hello"}},
		{name: "emit-room", nsp: "/", room: "room1", data: []any{"message", "to room1"}, rooms: []socket.Room{"room1"}},
		{name: "emit-rooms-except", nsp: "/", data: []any{"message", int64(1)}, rooms: []socket.Room{"a", "b"}, except: []socket.Room{"c"}},
		{name: "emit-flags", nsp: "/", data: []any{"message", "v"}, volatile: true, compress: new(false)},
		{name: "emit-nsp", nsp: "/admin", data: []any{"message", "admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fixtures[tt.name]
			ch := newChannels("fixture", tt.nsp, "me")
			room, ok := ch.roomOf(f.channel)
			if !ok || room != tt.room {
				t.Fatalf("roomOf(%q) = %q, %v; want %q, true", f.channel, room, ok, tt.room)
			}
			msg, err := decodeBroadcast(f.msg)
			if err != nil {
				t.Fatal(err)
			}
			if msg.uid != f.uid {
				t.Errorf("uid = %q, want %q", msg.uid, f.uid)
			}
			if msg.packet.Type != parser.EVENT || msg.packet.Nsp != tt.nsp || msg.packet.Id != nil {
				t.Errorf("packet = %+v, want an event of %s without id", msg.packet, tt.nsp)
			}
			if !reflect.DeepEqual(msg.packet.Data, tt.data) {
				t.Errorf("data = %#v, want %#v", msg.packet.Data, tt.data)
			}
			if got := sortedRooms(msg.opts.Rooms); !slices.Equal(got, sortRooms(tt.rooms)) {
				t.Errorf("rooms = %v, want %v", got, tt.rooms)
			}
			if got := sortedRooms(msg.opts.Except); !slices.Equal(got, sortRooms(tt.except)) {
				t.Errorf("except = %v, want %v", got, tt.except)
			}
			if msg.opts.Flags.Volatile != tt.volatile || !reflect.DeepEqual(msg.opts.Flags.Compress, tt.compress) {
				t.Errorf("flags = %+v, want volatile %v compress %v", msg.opts.Flags, tt.volatile, tt.compress)
			}
		})
	}
}

func TestRedisWireDecodesNodeValues(t *testing.T) {
	msg, err := decodeBroadcast(loadNodeFixtures(t)["emit-values"].msg)
	if err != nil {
		t.Fatal(err)
	}
	want := []any{"message", map[string]any{
		"int": int64(42), "neg": int64(-7), "big": int64(1 << 40), "float": 1.5, "str": "é✓",
		"t": true, "f": false, "nil": nil, "list": []any{int64(1), "two", nil},
		"bin": []byte{0, 1, 2, 255}, // undefined is left out by notepack.io
	}}
	if !reflect.DeepEqual(msg.packet.Data, want) {
		t.Fatalf("data = %#v\nwant %#v", msg.packet.Data, want)
	}
	if !parser.HasBinary(msg.packet.Data) {
		t.Error("a Buffer from Node must stay binary for the Go encoder")
	}
}

// Our bytes are Node's bytes for the same broadcast: same array, same keys
// in the same order, same integer formats.
func TestRedisWireEncodesLikeNode(t *testing.T) {
	fixtures := loadNodeFixtures(t)
	tests := []struct {
		name   string
		nsp    string
		data   []any
		opts   *socket.BroadcastOptions
		rooms  []string
		expect string
	}{
		{name: "emit-all", nsp: "/", data: []any{"message", "hello"}, opts: &socket.BroadcastOptions{Flags: &socket.BroadcastFlags{}}},
		{name: "emit-room", nsp: "/", data: []any{"message", "to room1"}, opts: &socket.BroadcastOptions{
			Rooms: types.NewSet[socket.Room]("room1"), Flags: &socket.BroadcastFlags{}}},
		{name: "emit-flags", nsp: "/", data: []any{"message", "v"}, opts: &socket.BroadcastOptions{
			Flags: func() *socket.BroadcastFlags {
				f := &socket.BroadcastFlags{}
				f.Volatile, f.Compress = true, new(false)
				return f
			}()}},
		{name: "emit-nsp", nsp: "/admin", data: []any{"message", "admin"}, opts: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fixtures[tt.name]
			got, err := encodeBroadcast(f.uid, &parser.Packet{Type: parser.EVENT, Nsp: tt.nsp, Data: tt.data}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, f.msg) {
				t.Errorf("encoded\n got %x\nwant %x", got, f.msg)
			}
			var rooms []string
			if tt.opts != nil {
				rooms = roomList(tt.opts.Rooms)
			}
			if ch := newChannels("fixture", tt.nsp, "x").broadcastChannel(rooms); ch != f.channel {
				t.Errorf("channel = %q, want %q", ch, f.channel)
			}
		})
	}
}

func TestRedisWireRoundTrip(t *testing.T) {
	timeout := 1500 * time.Millisecond
	flags := &socket.BroadcastFlags{Local: false, Timeout: &timeout, ExpectSingleResponse: true}
	id := uint64(7)
	in := &parser.Packet{Type: parser.BINARY_EVENT, Nsp: "/chat", Id: &id, Data: []any{
		"message", types.NewBytesBuffer([]byte{1, 2}), types.NewStringBufferString("text"), 2.5,
		map[string]any{"nested": []any{true, nil}}, json.RawMessage(`{"raw":[1,"two"]}`),
	}}
	opts := &socket.BroadcastOptions{Rooms: types.NewSet[socket.Room]("r1", "r2"), Except: types.NewSet[socket.Room]("x"), Flags: flags}
	b, err := encodeBroadcast("node1", in, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeBroadcast(b)
	if err != nil {
		t.Fatal(err)
	}
	wantData := []any{"message", []byte{1, 2}, "text", 2.5, map[string]any{"nested": []any{true, nil}},
		map[string]any{"raw": []any{1.0, "two"}}}
	if out.uid != "node1" || out.packet.Type != parser.EVENT || out.packet.Nsp != "/chat" || *out.packet.Id != 7 {
		t.Errorf("packet = %+v (uid %q)", out.packet, out.uid)
	}
	if !reflect.DeepEqual(out.packet.Data, wantData) {
		t.Errorf("data = %#v, want %#v", out.packet.Data, wantData)
	}
	if got := sortedRooms(out.opts.Rooms); !slices.Equal(got, []socket.Room{"r1", "r2"}) {
		t.Errorf("rooms = %v", got)
	}
	if *out.opts.Flags.Timeout != timeout || !out.opts.Flags.ExpectSingleResponse {
		t.Errorf("flags = %+v", out.opts.Flags)
	}
}

func TestRedisWireRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0xc1}, {0x91, 0xa1, 'x'}, {0x93, 0x01, 0x80, 0x80}, {0x93, 0xa1, 'x', 0x01, 0x80}} {
		if _, err := decodeBroadcast(b); err == nil {
			t.Errorf("decodeBroadcast(%x) accepted garbage", b)
		}
	}
}

func TestRedisChannelsRoomOf(t *testing.T) {
	ch := newChannels("socket.io", "/", "uid")
	tests := []struct {
		channel string
		room    string
		ok      bool
	}{
		{"socket.io#/#", "", true}, // io.emit: the library's adapter drops this one
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

func sortedRooms(s *types.Set[socket.Room]) []socket.Room {
	if s == nil {
		return nil
	}
	return sortRooms(s.Keys())
}

func sortRooms(r []socket.Room) []socket.Room {
	out := slices.Clone(r)
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
