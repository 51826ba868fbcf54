package streamsadapter

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"

	"github.com/chatio/socketio-chat/socketio"
)

// needs skips the test, or fails it under CI=true.
func needs(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// nodeWire runs testdata/node-wire.mjs: what the Node adapter writes.
func nodeWire(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("../../node_modules/@socket.io/redis-streams-adapter/package.json")
	}
	if err != nil {
		needs(t, "node or node_modules missing (scripts/setup.sh --test installs them): %v", err)
	}
	out, err := exec.Command(node, "testdata/node-wire.mjs").Output()
	if err != nil {
		t.Fatalf("node-wire.mjs: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func args(texts ...string) []socketio.Arg {
	out := make([]socketio.Arg, len(texts))
	for i, s := range texts {
		out[i] = socketio.Arg{JSON: json.RawMessage(s)}
	}
	return out
}

// TestWireMatchesNode: our entries, sessions and stream names are what
// the Node adapter writes, byte for byte, and we read what it writes.
func TestWireMatchesNode(t *testing.T) {
	node := nodeWire(t)
	cases := []struct {
		name string
		p    *socketio.BroadcastPacket
	}{
		{"plain", &socketio.BroadcastPacket{Nsp: "/", Event: "message",
			Args: args(`"hi"`, `1`, `2.5`, `-3`, `{"a":[true,null],"é":"😀"}`)}},
		{"rooms", &socketio.BroadcastPacket{Nsp: "/", Event: "message", Args: args(`"x"`),
			Opts: socketio.BroadcastOptions{Rooms: []string{"r1", "r2", "r1"}, Except: []string{"e"}, Volatile: true}}},
		{"binary", &socketio.BroadcastPacket{Nsp: "/", Event: "file",
			Args: []socketio.Arg{socketio.Binary([]byte{1, 2, 3}), {JSON: json.RawMessage(`{"n":300,"big":70000,"neg":-200,"f":0.5}`)}}}},
	}
	for _, c := range cases {
		got, err := broadcastData(c.p)
		if err != nil {
			t.Fatal(err)
		}
		if want := str(t, node[c.name]); got != want {
			t.Errorf("%s: we write\n%s\nNode writes\n%s", c.name, got, want)
		}
		// And we read Node's entry back as the same broadcast.
		m, err := decodeEntry(map[string]any{"uid": "u", "nsp": "/", "type": "3", "data": str(t, node[c.name])})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.packet == nil || m.packet.Event != c.p.Event || len(m.packet.Args) != len(c.p.Args) {
			t.Fatalf("%s: read %+v", c.name, m.packet)
		}
		for i, a := range m.packet.Args {
			if !slices.EqualFunc(a.Attachments, c.p.Args[i].Attachments, bytes.Equal) {
				t.Errorf("%s: argument %d: attachments %v, want %v", c.name, i, a.Attachments, c.p.Args[i].Attachments)
			}
			if string(a.JSON) != string(c.p.Args[i].JSON) {
				t.Errorf("%s: argument %d: %s, want %s", c.name, i, a.JSON, c.p.Args[i].JSON)
			}
		}
		if want := unique(c.p.Opts.Rooms); !slices.Equal(m.opts.Rooms, want) || m.opts.Volatile != c.p.Opts.Volatile {
			t.Errorf("%s: options %+v, want %+v", c.name, m.opts, c.p.Opts)
		}
	}
	if got, want := roomsData(socketio.BroadcastOptions{Rooms: []string{"a"}}, []string{"r"}), str(t, node["join"]); got != want {
		t.Errorf("join: %s, want %s", got, want)
	}
	sess, err := encodeSession(socketio.SessionState{SID: "s1", PID: "p1", Rooms: []string{"s1", "room"},
		Data: json.RawMessage(`{"user":"ann","n":42}`)})
	if err != nil {
		t.Fatal(err)
	}
	if want := str(t, node["session"]); sess != want {
		t.Errorf("session: %s, want %s", sess, want)
	}
	st, err := decodeSession(str(t, node["session"]))
	if err != nil || st.SID != "s1" || !slices.Equal(st.Rooms, []string{"s1", "room"}) || mustJSON(st.Data) != `{"n":42,"user":"ann"}` {
		t.Errorf("session read back: %+v %v", st, err)
	}
	var hashes map[string]int32
	if err := json.Unmarshal(node["streams"], &hashes); err != nil {
		t.Fatal(err)
	}
	for name, h := range hashes {
		if got := hashCode(name); got != h {
			t.Errorf("hashCode(%q) = %d, Node %d", name, got, h)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestStreamName: a namespace's stream, with one or several streams;
// JavaScript's % keeps the sign of a negative hash ("s--1").
func TestStreamName(t *testing.T) {
	if got := streamName("socket.io", 1, "/chat"); got != "socket.io" {
		t.Errorf("one stream: %q", got)
	}
	if got := streamName("s", 3, "/"); got != "s-2" { // 47 % 3
		t.Errorf(`streamName("/") = %q, want s-2`, got)
	}
	if h := hashCode("/zzzzzz"); h >= 0 {
		t.Fatalf("hashCode(/zzzzzz) = %d, want a negative one for this test", h)
	}
	if got, want := streamName("s", 7, "/zzzzzz"), "s-"+strconv.Itoa(int(hashCode("/zzzzzz")%7)); got != want || got[2] != '-' {
		t.Errorf(`streamName("/zzzzzz") = %q, want %q`, got, want)
	}
}
