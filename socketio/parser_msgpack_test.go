package socketio

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/chatio/socketio-chat/engineio"
)

// msgpackFixtures are packets written by socket.io-msgpack-parser 3.0.2
// itself (testdata/msgpack-parser.json, made by
// test/gen-msgpack-fixtures.mjs).
type msgpackFixtures struct {
	Client []struct {
		Name  string
		Hex   string
		Type  int
		Nsp   string
		ID    int64
		Event string
		Args  []fixtureArg
		Data  string
	}
	Server []struct {
		Name  string
		Hex   string
		Kind  string
		Type  int
		Nsp   string
		ID    int64
		Event string
		Args  []fixtureArg
		Data  string
	}
	Refused []struct {
		Name string
		Hex  string
	}
}

type fixtureArg struct {
	JSON        string
	Attachments []string
}

func (f fixtureArg) arg(t *testing.T) Arg {
	a := Arg{JSON: json.RawMessage(f.JSON)}
	for _, h := range f.Attachments {
		a.Attachments = append(a.Attachments, unhex(t, h))
	}
	return a
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadMsgpackFixtures(t testing.TB) *msgpackFixtures {
	b, err := os.ReadFile("testdata/msgpack-parser.json")
	if err != nil {
		t.Fatal(err)
	}
	var f msgpackFixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

func sameArgs(t *testing.T, name string, got []Arg, want []fixtureArg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d args, want %d: %v", name, len(got), len(want), got)
	}
	for i, w := range want {
		wa := w.arg(t)
		if string(got[i].JSON) != string(wa.JSON) {
			t.Errorf("%s: arg %d = %s, want %s", name, i, got[i].JSON, wa.JSON)
		}
		if len(got[i].Attachments) != len(wa.Attachments) {
			t.Errorf("%s: arg %d has %d attachments, want %d", name, i, len(got[i].Attachments), len(wa.Attachments))
			continue
		}
		for j := range wa.Attachments {
			if !bytes.Equal(got[i].Attachments[j], wa.Attachments[j]) {
				t.Errorf("%s: arg %d attachment %d = %x, want %x", name, i, j, got[i].Attachments[j], wa.Attachments[j])
			}
		}
	}
}

// Every packet socket.io-client sends with the msgpack parser (every
// payload type, binary, acks, CONNECT with auth, DISCONNECT; from Node
// and from the browser build) decodes to what a Node server's handlers
// get, as JSON clients would receive it.
func TestMsgpackDecodesClientPackets(t *testing.T) {
	f := loadMsgpackFixtures(t)
	for _, c := range f.Client {
		p, err := decodeMsgpackPacket(unhex(t, c.Hex))
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if p.typ != c.Type || p.nsp != c.Nsp || p.id != c.ID {
			t.Errorf("%s: type %d nsp %q id %d, want %d %q %d", c.Name, p.typ, p.nsp, p.id, c.Type, c.Nsp, c.ID)
		}
		switch p.typ {
		case typeEvent:
			if got := p.eventName(); got != c.Event {
				t.Errorf("%s: event %q, want %q", c.Name, got, c.Event)
			}
			args, err := p.argsFrom(1)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			sameArgs(t, c.Name, args, c.Args)
		case typeAck:
			args, err := p.argsFrom(0)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			sameArgs(t, c.Name, args, c.Args)
		default:
			if string(p.data) != c.Data {
				t.Errorf("%s: data %s, want %s", c.Name, p.data, c.Data)
			}
		}
	}
}

// Go writes every packet byte for byte as a Node server with
// socket.io-msgpack-parser does.
func TestMsgpackEncodesAsNode(t *testing.T) {
	f := loadMsgpackFixtures(t)
	for _, c := range f.Server {
		var args []Arg
		for _, a := range c.Args {
			args = append(args, a.arg(t))
		}
		var msgs []engineio.Message
		switch c.Kind {
		case "event":
			msgs = encodeEventFor(kindMsgpack, c.Nsp, c.ID, c.Event, args)
		case "ack":
			msgs = encodeAckFor(kindMsgpack, c.Nsp, c.ID, args)
		default:
			var payload []byte
			if c.Data != "" {
				payload = []byte(c.Data)
			}
			msgs = []engineio.Message{encodeControlFor(kindMsgpack, c.Type, c.Nsp, payload)}
		}
		if len(msgs) != 1 || !msgs[0].IsBinary() {
			t.Fatalf("%s: %d messages, want one binary message", c.Name, len(msgs))
		}
		if got := hex.EncodeToString(msgs[0].Payload()); got != c.Hex {
			t.Errorf("%s:\n got %s\nwant %s", c.Name, got, c.Hex)
		}
		// and it decodes back to the same arguments
		if c.Kind == "event" {
			p, err := decodeMsgpackPacket(msgs[0].Payload())
			if err != nil {
				t.Fatalf("%s: decoding our own packet: %v", c.Name, err)
			}
			back, err := p.argsFrom(1)
			if err != nil {
				t.Fatal(err)
			}
			sameArgs(t, c.Name+" (round trip)", back, c.Args)
		}
	}
}

// What socket.io-msgpack-parser or notepack.io refuse is refused.
func TestMsgpackRefuses(t *testing.T) {
	f := loadMsgpackFixtures(t)
	for _, c := range f.Refused {
		if p, err := decodeMsgpackPacket(unhex(t, c.Hex)); err == nil {
			t.Errorf("%s: accepted %+v", c.Name, p)
		}
	}
	// and what the JSON parser refuses too
	for name, h := range map[string]string{
		"reserved event": hex.EncodeToString(encodeMsgpackPacket(typeEvent, "/", -1, "disconnect", true, nil, nil).Payload()),
		"empty event":    "83a47479706502a46461746190a36e7370a12f",
		"connect error":  "83a47479706504a46461746180a36e7370a12f",
		"negative id":    "84a47479706502a46461746191a178a36e7370a12fa26964ff",
	} {
		if _, err := decodeMsgpackPacket(unhex(t, h)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A broadcast logged for recovery (JSON) is transcoded for a recovering
// msgpack client into what it would have got live.
func TestMsgpackTranscodesLoggedPackets(t *testing.T) {
	args := []Arg{{JSON: json.RawMessage(`{"a":[1,"x",null]}`)}, Binary([]byte{1, 2, 3}), {JSON: json.RawMessage(`"offset"`)}}
	logged := encodeEvent("/chat", -1, "message", args)
	got := transcodeLogged(logged)
	want := encodeEventFor(kindMsgpack, "/chat", -1, "message", args)
	if len(got) != 1 || !bytes.Equal(got[0].Payload(), want[0].Payload()) {
		t.Fatalf("transcoded %v, want %x", got, want[0].Payload())
	}
}

func FuzzMsgpackPacket(f *testing.F) {
	fx := loadMsgpackFixtures(f)
	for _, c := range fx.Client {
		b, _ := hex.DecodeString(c.Hex)
		f.Add(b)
	}
	for _, c := range fx.Refused {
		b, _ := hex.DecodeString(c.Hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeMsgpackPacket(b)
		if err != nil {
			return
		}
		if p.typ < typeConnect || p.typ > typeAck {
			t.Fatalf("accepted type %d", p.typ)
		}
		if p.data != nil && !json.Valid(p.data) {
			t.Fatalf("invalid JSON data %q", p.data)
		}
		if p.typ != typeEvent && p.typ != typeAck {
			return
		}
		first := 0
		if p.typ == typeEvent {
			first = 1
		}
		args, err := p.argsFrom(first)
		if err != nil {
			return
		}
		// What was accepted is written back and reads the same.
		var msgs []byte
		if p.typ == typeEvent {
			msgs = encodeEventFor(kindMsgpack, p.nsp, p.id, p.eventName(), args)[0].Payload()
		} else {
			msgs = encodeAckFor(kindMsgpack, p.nsp, p.id, args)[0].Payload()
		}
		q, err := decodeMsgpackPacket(msgs)
		if err != nil {
			t.Fatalf("cannot decode our encoding %x of %x: %v", msgs, b, err)
		}
		back, err := q.argsFrom(first)
		if err != nil || len(back) != len(args) {
			t.Fatalf("args %v, back %v (%v)", args, back, err)
		}
		for i := range args {
			if !bytes.Equal(args[i].JSON, back[i].JSON) || len(args[i].Attachments) != len(back[i].Attachments) {
				t.Fatalf("arg %d: %s became %s", i, args[i].JSON, back[i].JSON)
			}
		}
	})
}
